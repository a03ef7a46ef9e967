package vnc

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"io"
	"sync/atomic"
	"testing"
)

// This file builds what an RFB server sends, byte by byte from RFC 6143, and
// parses what the client sent back, so tests check the client against the
// protocol rather than against itself.

func u16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func u32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func rfbString(s string) []byte { return cat(u32(len(s)), []byte(s)) }

// version is the server's ProtocolVersion message, v as "003.008".
func version(v string) []byte { return []byte("RFB " + v + "\n") }

// secTypes offers security types the RFB 3.7/3.8 way; 3.8 scripts add a SecurityResult.
func secTypes(types ...byte) []byte { return append([]byte{byte(len(types))}, types...) }

// serverInit announces a w x h framebuffer in the server's own 16-bit format,
// which the client must override with SetPixelFormat.
func serverInit(w, h int, name string) []byte {
	pf := []byte{16, 16, 1, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0}
	return cat(u16(w), u16(h), pf, rfbString(name))
}

// handshake38 is a complete RFB 3.8 server handshake with security None.
func handshake38(w, h int) []byte {
	return cat(version("003.008"), secTypes(1), u32(0), serverInit(w, h, "fake"))
}

func update(rects ...[]byte) []byte { return cat([]byte{0, 0}, u16(len(rects)), cat(rects...)) }

func rectHeader(x, y, w, h, enc int) []byte { return cat(u16(x), u16(y), u16(w), u16(h), u32(enc)) }

// pattern is the colour a test server paints at (x, y) of its n'th picture.
func pattern(n, x, y int) color.RGBA {
	return color.RGBA{R: uint8(40*x + n), G: uint8(30*y + 2*n), B: uint8(7*x*y + 3*n), A: 0xff}
}

// rawRect encodes the rectangle in the pixel format the client asked for:
// 32 bits little-endian, red at bit 16, green at 8, blue at 0.
func rawRect(x, y, w, h int, px func(x, y int) color.RGBA) []byte {
	b := rectHeader(x, y, w, h, 0)
	for j := y; j < y+h; j++ {
		for i := x; i < x+w; i++ {
			c := px(i, j)
			b = binary.LittleEndian.AppendUint32(b, 0xff000000|uint32(c.R)<<16|uint32(c.G)<<8|uint32(c.B))
		}
	}
	return b
}

func copyRectRect(x, y, w, h, sx, sy int) []byte {
	return cat(rectHeader(x, y, w, h, 1), u16(sx), u16(sy))
}

func desktopSize(w, h int) []byte { return rectHeader(0, 0, w, h, -223) }

// fullRaw is an update that paints the whole w x h screen with picture n.
func fullRaw(n, w, h int) []byte {
	return update(rawRect(0, 0, w, h, func(x, y int) color.RGBA { return pattern(n, x, y) }))
}

// want paints what fullRaw(n, w, h) should produce.
func want(n, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, pattern(n, x, y))
		}
	}
	return img
}

// duplex is the client's end of a fake server: two io.Pipes, so the server
// can end its side (EOF) while still reading what the client writes, like a
// TCP half-close. It has no deadlines, so only Close interrupts it.
type duplex struct {
	fromServer *io.PipeReader
	toServer   *io.PipeWriter
	closed     atomic.Bool
}

func (d *duplex) Read(p []byte) (int, error)  { return d.fromServer.Read(p) }
func (d *duplex) Write(p []byte) (int, error) { return d.toServer.Write(p) }

func (d *duplex) Close() error {
	d.closed.Store(true)
	d.fromServer.Close()
	return d.toServer.Close()
}

// fakeServer plays a fixed script to the client and records every byte the
// client sends.
type fakeServer struct {
	client *duplex
	sent   chan []byte // what the client sent, once the client closed its end
}

// serve plays script and then ends the server's side of the stream.
func serve(t *testing.T, script []byte) *fakeServer { return start(t, script, true) }

// serveThenHang plays script and then sends nothing more, without ending.
func serveThenHang(t *testing.T, script []byte) *fakeServer { return start(t, script, false) }

func start(t *testing.T, script []byte, end bool) *fakeServer {
	t.Helper()
	sr, sw := io.Pipe() // server to client
	cr, cw := io.Pipe() // client to server
	fs := &fakeServer{client: &duplex{fromServer: sr, toServer: cw}, sent: make(chan []byte, 1)}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// A client that stops reading early (on an error) closes its end,
		// which fails this write; that is fine.
		if _, err := sw.Write(script); err == nil && end {
			sw.Close()
		}
	}()
	go func() {
		b, _ := io.ReadAll(cr)
		fs.sent <- b
	}()
	t.Cleanup(func() {
		sw.Close()
		fs.client.Close()
		<-wrote
	})
	return fs
}

// received closes the client's end and returns what the client sent.
func (fs *fakeServer) received() []byte {
	fs.client.Close()
	return <-fs.sent
}

// clientMessages is what a client sent, parsed per RFC 6143.
type clientMessages struct {
	version     string
	security    int // -1 when the client chose none (RFB 3.3)
	shared      int
	pixelFormat []byte
	encodings   []int32
	requests    []image.Rectangle
	incremental []bool
}

func parseClient(t *testing.T, b []byte, minor int) clientMessages {
	t.Helper()
	r := bytes.NewReader(b)
	next := func(n int) []byte {
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatalf("client's messages end early (%d bytes in all): %x", len(b), b)
		}
		return p
	}
	m := clientMessages{version: string(next(12)), security: -1}
	if minor >= 7 {
		m.security = int(next(1)[0])
	}
	m.shared = int(next(1)[0])
	for r.Len() > 0 {
		switch typ := next(1)[0]; typ {
		case 0:
			m.pixelFormat = next(19)[3:]
		case 2:
			p := next(3)
			for range binary.BigEndian.Uint16(p[1:3]) {
				m.encodings = append(m.encodings, int32(binary.BigEndian.Uint32(next(4))))
			}
		case 3:
			p := next(9)
			x, y := int(binary.BigEndian.Uint16(p[1:3])), int(binary.BigEndian.Uint16(p[3:5]))
			w, h := int(binary.BigEndian.Uint16(p[5:7])), int(binary.BigEndian.Uint16(p[7:9]))
			m.requests = append(m.requests, image.Rect(x, y, x+w, y+h))
			m.incremental = append(m.incremental, p[0] != 0)
		default:
			t.Fatalf("client sent message type %d, which a screenshot client has no use for", typ)
		}
	}
	return m
}
