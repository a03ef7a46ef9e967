package vnc

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// copyRegion is an independent CopyRect: it buffers the source first, so
// overlap cannot matter.
func copyRegion(img *image.RGBA, x, y, w, h, sx, sy int) *image.RGBA {
	out := image.NewRGBA(img.Rect)
	copy(out.Pix, img.Pix)
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for j := range h {
		for i := range w {
			src.Set(i, j, img.At(sx+i, sy+j))
		}
	}
	for j := range h {
		for i := range w {
			out.Set(x+i, y+j, src.At(i, j))
		}
	}
	return out
}

func TestScreenshotDecodesScreen(t *testing.T) {
	full := image.Rect(0, 0, 4, 3)
	tests := []struct {
		name        string
		script      []byte
		minor       int // the version the client should answer with
		want        *image.RGBA
		wantVersion string            // what the client should send
		requests    []image.Rectangle // what the client should ask for
		captures    int               // Capture calls, 1 when zero
	}{{
		name:        "RFB 3.8 raw",
		script:      cat(handshake38(4, 3), fullRaw(1, 4, 3)),
		minor:       8,
		want:        want(1, 4, 3),
		wantVersion: "RFB 003.008\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "RFB 3.7 sends no SecurityResult for None, which need not be offered first",
		script:      cat(version("003.007"), secTypes(2, 1), serverInit(4, 3, "q"), fullRaw(2, 4, 3)),
		minor:       7,
		want:        want(2, 4, 3),
		wantVersion: "RFB 003.007\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "RFB 3.3 server decides the security type",
		script:      cat(version("003.003"), u32(1), serverInit(4, 3, "q"), fullRaw(3, 4, 3)),
		minor:       3,
		want:        want(3, 4, 3),
		wantVersion: "RFB 003.003\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "an unknown 3.x minor version is treated as 3.3",
		script:      cat(version("003.005"), u32(1), serverInit(4, 3, "q"), fullRaw(4, 4, 3)),
		minor:       3,
		want:        want(4, 4, 3),
		wantVersion: "RFB 003.003\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "a server newer than 3.8 is answered with 3.8",
		script:      cat(version("004.001"), secTypes(1), u32(0), serverInit(4, 3, "q"), fullRaw(5, 4, 3)),
		minor:       8,
		want:        want(5, 4, 3),
		wantVersion: "RFB 003.008\n",
		requests:    []image.Rectangle{full},
	}, {
		name: "CopyRect moves overlapping regions both ways",
		script: cat(handshake38(4, 3), fullRaw(1, 4, 3),
			update(copyRectRect(1, 0, 3, 3, 0, 0), copyRectRect(0, 0, 4, 2, 0, 1), copyRectRect(0, 1, 2, 2, 2, 0))),
		minor: 8,
		want: copyRegion(copyRegion(copyRegion(want(1, 4, 3),
			1, 0, 3, 3, 0, 0), 0, 0, 4, 2, 0, 1), 0, 1, 2, 2, 2, 0),
		wantVersion: "RFB 003.008\n",
		// The raw update answers the first capture, the CopyRect update the second.
		requests: []image.Rectangle{full, full},
		captures: 2,
	}, {
		name: "Bell, ServerCutText and SetColourMapEntries are skipped",
		script: cat(handshake38(4, 3), []byte{2}, []byte{3, 0, 0, 0}, rfbString("clipboard"),
			[]byte{1, 0}, u16(0), u16(2), make([]byte, 12), fullRaw(6, 4, 3)),
		minor:       8,
		want:        want(6, 4, 3),
		wantVersion: "RFB 003.008\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "an update without rectangles is not the screen",
		script:      cat(handshake38(4, 3), update(), fullRaw(7, 4, 3)),
		minor:       8,
		want:        want(7, 4, 3),
		wantVersion: "RFB 003.008\n",
		requests:    []image.Rectangle{full},
	}, {
		name:        "DesktopSize makes the client ask for the new screen",
		script:      cat(handshake38(4, 3), update(desktopSize(6, 5)), fullRaw(8, 6, 5)),
		minor:       8,
		want:        want(8, 6, 5),
		wantVersion: "RFB 003.008\n",
		requests:    []image.Rectangle{full, image.Rect(0, 0, 6, 5)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := serve(t, tt.script)
			ctx := t.Context()
			c, err := Connect(ctx, fs.client)
			if err != nil {
				t.Fatal(err)
			}
			var img *image.RGBA
			for range max(tt.captures, 1) {
				if img, err = c.Capture(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if img.Rect != tt.want.Rect || !slices.Equal(img.Pix, tt.want.Pix) {
				t.Errorf("screen is\n%v\nwant\n%v", img.Pix, tt.want.Pix)
			}
			if got, want := c.ProtocolVersion(), fmt.Sprintf("3.%d", tt.minor); got != want {
				t.Errorf("ProtocolVersion() = %q, want %q", got, want)
			}
			m := parseClient(t, fs.received(), tt.minor)
			if m.version != tt.wantVersion {
				t.Errorf("client sent version %q, want %q", m.version, tt.wantVersion)
			}
			if tt.minor >= 7 && m.security != 1 {
				t.Errorf("client chose security type %d, want 1 (None)", m.security)
			}
			if m.shared != 1 {
				t.Errorf("client sent shared-flag %d, want 1 so other viewers stay connected", m.shared)
			}
			checkPixelFormat(t, m.pixelFormat)
			for _, e := range []int32{0, 1} {
				if !slices.Contains(m.encodings, e) {
					t.Errorf("client's encodings %v lack %d, which it decodes", m.encodings, e)
				}
			}
			if !slices.Equal(m.requests, tt.requests) {
				t.Errorf("client requested %v, want %v", m.requests, tt.requests)
			}
			if slices.Contains(m.incremental, true) {
				t.Errorf("client sent incremental requests %v; a screenshot needs the whole screen", m.incremental)
			}
		})
	}
}

// checkPixelFormat checks the format the client asked for against the one the
// fake server encodes: 32 bits, little-endian, true colour, 8-bit channels.
func checkPixelFormat(t *testing.T, pf []byte) {
	t.Helper()
	if len(pf) != 16 {
		t.Fatalf("client sent no SetPixelFormat (got %v)", pf)
	}
	bpp, bigEndian, trueColour := pf[0], pf[2], pf[3]
	maxes := [3]int{int(pf[4])<<8 | int(pf[5]), int(pf[6])<<8 | int(pf[7]), int(pf[8])<<8 | int(pf[9])}
	shifts := [3]byte{pf[10], pf[11], pf[12]}
	if bpp != 32 || bigEndian != 0 || trueColour == 0 || maxes != [3]int{255, 255, 255} || shifts != [3]byte{16, 8, 0} {
		t.Errorf("client asked for pixel format %v: bpp %d, big-endian %d, true colour %d, max %v, shift %v; want 32-bit little-endian true colour 8-8-8 at 16, 8, 0",
			pf, bpp, bigEndian, trueColour, maxes, shifts)
	}
}

func TestScreenshotNamesWhatFailed(t *testing.T) {
	tests := []struct {
		name   string
		script []byte
		opts   []Option
		want   []string
	}{
		{"only VNC authentication offered", cat(version("003.008"), secTypes(2, 19)), nil,
			[]string{"security types 2 (VNC Authentication), 19 (VeNCrypt)", "only 1 (None)"}},
		{"RFB 3.3 server requires VNC authentication", cat(version("003.003"), u32(2)), nil,
			[]string{"requires security type 2 (VNC Authentication)"}},
		{"RFB 3.8 server refuses with a reason", cat(version("003.008"), secTypes(), rfbString("too many clients")), nil,
			[]string{"refused", "too many clients"}},
		{"RFB 3.3 server refuses with a reason", cat(version("003.003"), u32(0), rfbString("go away")), nil,
			[]string{"refused", "go away"}},
		{"SecurityResult says failed", cat(version("003.008"), secTypes(1), u32(1), rfbString("denied")), nil,
			[]string{"rejected security type 1 (None)", "denied"}},
		{"not an RFB server", []byte("HTTP/1.1 400 Bad Request\r\n"), nil,
			[]string{`"HTTP/1.1 400"`, "not an RFB version"}},
		{"RFB older than 3.3", version("002.000"), nil,
			[]string{"older than 3.3"}},
		{"framebuffer larger than allowed", handshake38(100, 100), []Option{WithMaxPixels(1000)},
			[]string{"framebuffer of 100x100 exceeds the limit of 1000 pixels"}},
		{"framebuffer without pixels", handshake38(0, 10), nil,
			[]string{"framebuffer of 0x10 has no pixels"}},
		{"desktop name too long", cat(version("003.008"), secTypes(1), u32(0), u16(4), u16(3), make([]byte, 16), u32(1<<30)), nil,
			[]string{"desktop name", "string of 1073741824 bytes exceeds the limit"}},
		{"unsupported encoding", cat(handshake38(4, 3), update(rectHeader(0, 0, 4, 3, 5))), nil,
			[]string{"rectangle 1 of 1", "encoding 5 (Hextile) is not supported"}},
		{"unsupported message type", cat(handshake38(4, 3), []byte{7}), nil,
			[]string{"type 7 is not supported"}},
		{"raw rectangle outside the screen", cat(handshake38(4, 3), update(rectHeader(2, 0, 3, 1, 0))), nil,
			[]string{"3x1 at (2,0)", "outside the 4x3 framebuffer"}},
		{"CopyRect source outside the screen", cat(handshake38(4, 3), update(copyRectRect(0, 0, 2, 2, 3, 0))), nil,
			[]string{"CopyRect from (3,0) lies outside the 4x3 framebuffer"}},
		{"DesktopSize larger than allowed", cat(handshake38(4, 3), update(desktopSize(10, 10))), []Option{WithMaxPixels(20)},
			[]string{"framebuffer of 10x10 exceeds the limit of 20 pixels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := serve(t, tt.script)
			_, err := Screenshot(t.Context(), fs.client, tt.opts...)
			if err == nil {
				t.Fatal("Screenshot succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !fs.client.closed.Load() {
				t.Error("Screenshot left the stream open after failing")
			}
		})
	}
}

func TestScreenshotFailsOnTruncatedStream(t *testing.T) {
	scripts := map[string][]byte{
		"RFB 3.8":  cat(handshake38(3, 2), fullRaw(1, 3, 2)),
		"RFB 3.3":  cat(version("003.003"), u32(1), serverInit(3, 2, "q"), fullRaw(1, 3, 2)),
		"CopyRect": cat(handshake38(3, 2), update(copyRectRect(0, 0, 1, 1, 1, 1))),
		"skipped messages": cat(handshake38(3, 2), []byte{3, 0, 0, 0}, rfbString("xy"),
			[]byte{1, 0}, u16(0), u16(1), make([]byte, 6), update(desktopSize(2, 2)), fullRaw(1, 2, 2)),
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			if _, err := Screenshot(t.Context(), serve(t, script).client); err != nil {
				t.Fatalf("whole script: %v", err)
			}
			for n := range len(script) {
				_, err := Screenshot(t.Context(), serve(t, script[:n]).client)
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("stream cut after %d of %d bytes: error %v, want one wrapping EOF", n, len(script), err)
				}
			}
		})
	}
}

func TestCaptureReturnsEachScreenSeparately(t *testing.T) {
	fs := serve(t, cat(handshake38(4, 3), fullRaw(1, 4, 3), fullRaw(2, 4, 3)))
	c, err := Connect(t.Context(), fs.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Name() != "fake" {
		t.Errorf("Name() = %q, want the server's desktop name %q", c.Name(), "fake")
	}
	first, err := c.Capture(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Capture(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Pix, want(1, 4, 3).Pix) {
		t.Error("second capture changed the image the first one returned")
	}
	if !slices.Equal(second.Pix, want(2, 4, 3).Pix) {
		t.Error("second capture does not show the second screen")
	}
}

func TestContextEndsBlockedCapture(t *testing.T) {
	tests := []struct {
		name       string
		conn       func(t *testing.T) io.ReadWriter
		wantClosed func() bool
	}{{
		name: "net.Conn",
		conn: func(t *testing.T) io.ReadWriter {
			srv, cli := net.Pipe()
			t.Cleanup(func() { srv.Close() })
			go func() {
				if _, err := srv.Write(handshake38(4, 3)); err == nil {
					_, _ = io.Copy(io.Discard, srv)
				}
			}()
			return cli
		},
	}, {
		name: "stream that can only be closed",
		conn: func(t *testing.T) io.ReadWriter { return serveThenHang(t, handshake38(4, 3)).client },
	}, {
		name: "stream that can be neither closed nor interrupted",
		conn: func(t *testing.T) io.ReadWriter {
			d := serveThenHang(t, handshake38(4, 3)).client
			return struct {
				io.Reader
				io.Writer
			}{d, d}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := tt.conn(t)
			c, err := Connect(t.Context(), conn)
			if err != nil {
				t.Fatal(err)
			}
			// The server never answers the request: only the context can end the wait.
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := c.Capture(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Capture with an expired context: %v, want DeadlineExceeded", err)
			}
			if _, err := c.Capture(t.Context()); err == nil || !strings.Contains(err.Error(), "earlier capture failed") {
				t.Errorf("Capture after an abandoned one: %v, want a refusal", err)
			}
			if cl, ok := conn.(io.Closer); ok {
				// A closed stream fails every write.
				if _, err := conn.Write([]byte{0}); err == nil {
					t.Errorf("stream is still open after the context ended")
				}
				cl.Close()
			}
		})
	}
}

func TestCloseAbortsCapture(t *testing.T) {
	fs := serveThenHang(t, handshake38(4, 3))
	c, err := Connect(t.Context(), fs.client)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Capture(t.Context())
		done <- err
	}()
	// Whether Close lands before Capture starts or while it waits for the
	// server, which never answers, Capture must return an error.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("Capture on a closed client succeeded")
	}
	if _, err := c.Capture(t.Context()); err == nil || !strings.Contains(err.Error(), "client closed") {
		t.Errorf("Capture after Close: %v, want an error saying the client is closed", err)
	}
}

func TestConnectRefusesCancelledContext(t *testing.T) {
	fs := serveThenHang(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Connect(ctx, fs.client); !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with a cancelled context: %v, want Canceled", err)
	}
	if !fs.client.closed.Load() {
		t.Error("Connect left the stream open after failing")
	}
}

func TestWithMaxPixelsRefusesNonPositive(t *testing.T) {
	for _, n := range []int{0, -1} {
		fs := serveThenHang(t, nil)
		if _, err := Connect(t.Context(), fs.client, WithMaxPixels(n)); err == nil || !strings.Contains(err.Error(), "max pixels") {
			t.Errorf("WithMaxPixels(%d): %v, want an error naming max pixels", n, err)
		}
	}
}
