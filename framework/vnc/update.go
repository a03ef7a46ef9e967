package vnc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Server-to-client message types.
const (
	msgFramebufferUpdate   = 0
	msgSetColourMapEntries = 1
	msgBell                = 2
	msgServerCutText       = 3
)

// capture asks for the whole screen and reads server messages until an update
// with pixels in it has arrived. A resize discards the picture, so the whole
// (new) screen is asked for again.
func (s *session) capture() error {
	if err := s.requestFull(); err != nil {
		return err
	}
	for {
		t, err := s.r.ReadByte()
		if err != nil {
			return fmt.Errorf("read server message type: %w", err)
		}
		switch t {
		case msgFramebufferUpdate:
			painted, resized, err := s.readFramebufferUpdate()
			if err != nil {
				return err
			}
			if resized {
				if err := s.requestFull(); err != nil {
					return err
				}
				continue
			}
			if painted {
				return nil
			}
		case msgSetColourMapEntries:
			// We asked for true colour, so a colour map is of no use.
			var b [5]byte
			if _, err := io.ReadFull(s.r, b[:]); err != nil {
				return fmt.Errorf("read SetColourMapEntries: %w", noEOF(err))
			}
			n := int64(binary.BigEndian.Uint16(b[3:5]))
			if err := s.discard(6 * n); err != nil {
				return fmt.Errorf("read SetColourMapEntries of %d colours: %w", n, err)
			}
		case msgBell:
		case msgServerCutText:
			var b [7]byte
			if _, err := io.ReadFull(s.r, b[:]); err != nil {
				return fmt.Errorf("read ServerCutText: %w", noEOF(err))
			}
			n := int64(binary.BigEndian.Uint32(b[3:7]))
			if err := s.discard(n); err != nil {
				return fmt.Errorf("read ServerCutText of %d bytes: %w", n, err)
			}
		default:
			return fmt.Errorf("read server message: type %d is not supported", t)
		}
	}
}

func (s *session) requestFull() error {
	b := [10]byte{3, 0} // FramebufferUpdateRequest, not incremental
	binary.BigEndian.PutUint16(b[6:8], uint16(s.fb.Rect.Dx()))
	binary.BigEndian.PutUint16(b[8:10], uint16(s.fb.Rect.Dy()))
	if _, err := s.w.Write(b[:]); err != nil {
		return fmt.Errorf("write FramebufferUpdateRequest for %dx%d: %w", s.fb.Rect.Dx(), s.fb.Rect.Dy(), err)
	}
	return nil
}

// readFramebufferUpdate reads one FramebufferUpdate after its type byte and
// applies its rectangles to the framebuffer. It reports whether any pixels
// were drawn and whether the screen changed size.
func (s *session) readFramebufferUpdate() (painted, resized bool, err error) {
	var b [3]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return false, false, fmt.Errorf("read FramebufferUpdate: %w", noEOF(err))
	}
	n := int(binary.BigEndian.Uint16(b[1:3]))
	for i := range n {
		var h [12]byte
		if _, err := io.ReadFull(s.r, h[:]); err != nil {
			return false, false, fmt.Errorf("read FramebufferUpdate rectangle %d of %d: %w", i+1, n, noEOF(err))
		}
		r := rect{
			x:   int(binary.BigEndian.Uint16(h[0:2])),
			y:   int(binary.BigEndian.Uint16(h[2:4])),
			w:   int(binary.BigEndian.Uint16(h[4:6])),
			h:   int(binary.BigEndian.Uint16(h[6:8])),
			enc: int32(binary.BigEndian.Uint32(h[8:12])),
		}
		switch r.enc {
		case encodingRaw:
			err = s.raw(r)
			painted = true
		case encodingCopyRect:
			err = s.copyRect(r)
			painted = true
		case encodingDesktopSize:
			err = s.resize(r.w, r.h)
			resized = true
		default:
			err = fmt.Errorf("encoding %s is not supported", encodingName(r.enc))
		}
		if err != nil {
			return false, false, fmt.Errorf("read FramebufferUpdate rectangle %d of %d, %s: %w", i+1, n, r, err)
		}
	}
	return painted, resized, nil
}

type rect struct {
	x, y, w, h int
	enc        int32
}

func (r rect) String() string { return fmt.Sprintf("%dx%d at (%d,%d)", r.w, r.h, r.x, r.y) }

// inside reports whether a w x h rectangle at (x, y) lies in the framebuffer.
func (s *session) inside(x, y, w, h int) bool {
	return x+w <= s.fb.Rect.Dx() && y+h <= s.fb.Rect.Dy()
}

// raw reads pixels in the format set by SetPixelFormat (B, G, R, unused)
// row by row into the framebuffer.
func (s *session) raw(r rect) error {
	if !s.inside(r.x, r.y, r.w, r.h) {
		return fmt.Errorf("raw rectangle lies outside the %dx%d framebuffer", s.fb.Rect.Dx(), s.fb.Rect.Dy())
	}
	n := 4 * r.w
	if cap(s.row) < n {
		s.row = make([]byte, n)
	}
	row := s.row[:n]
	for y := r.y; y < r.y+r.h; y++ {
		if _, err := io.ReadFull(s.r, row); err != nil {
			return fmt.Errorf("read raw pixels of row %d: %w", y, noEOF(err))
		}
		dst := s.fb.Pix[s.fb.PixOffset(r.x, y):][:n]
		for i := 0; i < n; i += 4 {
			dst[i+0] = row[i+2]
			dst[i+1] = row[i+1]
			dst[i+2] = row[i+0]
			dst[i+3] = 0xff
		}
	}
	return nil
}

// copyRect copies a rectangle the client already has to another place.
func (s *session) copyRect(r rect) error {
	var b [4]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return fmt.Errorf("read CopyRect source: %w", noEOF(err))
	}
	sx, sy := int(binary.BigEndian.Uint16(b[0:2])), int(binary.BigEndian.Uint16(b[2:4]))
	if !s.inside(r.x, r.y, r.w, r.h) || !s.inside(sx, sy, r.w, r.h) {
		return fmt.Errorf("CopyRect from (%d,%d) lies outside the %dx%d framebuffer", sx, sy, s.fb.Rect.Dx(), s.fb.Rect.Dy())
	}
	n := 4 * r.w
	// Source and destination may overlap: copy rows in the order that reads
	// each source row before it is overwritten (copy itself handles the
	// overlap within a row).
	for i := range r.h {
		row := i
		if sy < r.y {
			row = r.h - 1 - i
		}
		copy(s.fb.Pix[s.fb.PixOffset(r.x, r.y+row):][:n], s.fb.Pix[s.fb.PixOffset(sx, sy+row):][:n])
	}
	return nil
}

func (s *session) discard(n int64) error {
	if _, err := io.CopyN(io.Discard, s.r, n); err != nil {
		return noEOF(err)
	}
	return nil
}

// noEOF turns io.EOF inside a message into io.ErrUnexpectedEOF: the stream
// ended mid-message, not between messages.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func encodingName(e int32) string {
	names := map[int32]string{
		0: "Raw", 1: "CopyRect", 2: "RRE", 5: "Hextile", 6: "Zlib", 7: "Tight",
		15: "TRLE", 16: "ZRLE", -223: "DesktopSize", -224: "LastRect",
		-239: "Cursor", -240: "X Cursor", -308: "ExtendedDesktopSize",
	}
	if n, ok := names[e]; ok {
		return fmt.Sprintf("%d (%s)", e, n)
	}
	return strconv.Itoa(int(e))
}
