package vnc

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// fuzzMaxPixels keeps each fuzzed allocation small, so the fuzzer explores
// the limit rather than the machine's memory.
const fuzzMaxPixels = 1 << 14

// FuzzReadFramebufferUpdate feeds arbitrary server messages to a client with
// a 16x8 screen: capturing may fail but must never panic, and the framebuffer
// must stay within the limit and consistent with its bounds.
func FuzzReadFramebufferUpdate(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &session{r: bufio.NewReader(bytes.NewReader(b)), w: io.Discard, maxPixels: fuzzMaxPixels}
		if err := s.resize(16, 8); err != nil {
			t.Fatal(err)
		}
		err := s.capture()
		checkFramebuffer(t, s)
		if err == nil && len(b) < 4+12 {
			t.Fatalf("capture succeeded on %d bytes, too few for an update with a rectangle", len(b))
		}
	})
}

// FuzzConnect feeds arbitrary bytes as a server's handshake.
func FuzzConnect(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &session{r: bufio.NewReader(bytes.NewReader(b)), w: io.Discard, maxPixels: fuzzMaxPixels}
		if err := s.handshake(); err != nil {
			return
		}
		checkFramebuffer(t, s)
		if len(s.name) > maxStringLen {
			t.Fatalf("accepted a desktop name of %d bytes", len(s.name))
		}
		if v := s.version(); v != "3.3" && v != "3.7" && v != "3.8" {
			t.Fatalf("agreed on RFB %s", v)
		}
	})
}

func checkFramebuffer(t *testing.T, s *session) {
	t.Helper()
	w, h := s.fb.Rect.Dx(), s.fb.Rect.Dy()
	if w <= 0 || h <= 0 || w*h > s.maxPixels || len(s.fb.Pix) != 4*w*h {
		t.Fatalf("framebuffer %v with %d bytes, limit %d pixels", s.fb.Rect, len(s.fb.Pix), s.maxPixels)
	}
}
