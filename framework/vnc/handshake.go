package vnc

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"strconv"
	"strings"
)

// maxStringLen bounds the desktop name and failure reasons a server may send;
// real ones are a line of text.
const maxStringLen = 64 << 10

const securityNone = 1

// RFB encodings this client asks for, in order of preference.
const (
	encodingRaw         = 0
	encodingCopyRect    = 1
	encodingDesktopSize = -223
)

// session is the protocol state that operations work on. Operations run in a
// goroutine of their own (see run), so a session is never shared with the
// caller's goroutine while one runs.
type session struct {
	r         *bufio.Reader
	w         io.Writer
	minor     int // RFB 3.minor agreed on: 3, 7 or 8
	maxPixels int
	name      string
	fb        *image.RGBA
	row       []byte // one row of raw pixel data, reused
}

func (s *session) version() string { return "3." + strconv.Itoa(s.minor) }

// handshake runs ProtocolVersion, security, ClientInit and ServerInit, then
// tells the server which pixel format and encodings to use.
func (s *session) handshake() error {
	var v [12]byte
	if _, err := io.ReadFull(s.r, v[:]); err != nil {
		return fmt.Errorf("read server protocol version: %w", err)
	}
	major, minor, err := parseVersion(v[:])
	if err != nil {
		return err
	}
	switch {
	case major > 3 || minor >= 8:
		// Servers newer than 3.8 (RealVNC's 4.x, Apple's 3.889) accept 3.8.
		s.minor = 8
	case minor == 7:
		s.minor = 7
	default:
		// RFC 6143: any other 3.x is to be treated as 3.3.
		s.minor = 3
	}
	if _, err := fmt.Fprintf(s.w, "RFB 003.%03d\n", s.minor); err != nil {
		return fmt.Errorf("write client protocol version %s: %w", s.version(), err)
	}
	if err := s.security(); err != nil {
		return err
	}
	// ClientInit: shared, so that a person watching the screen is not
	// disconnected by the test taking a screenshot.
	if _, err := s.w.Write([]byte{1}); err != nil {
		return fmt.Errorf("write ClientInit: %w", err)
	}
	return s.serverInit()
}

func parseVersion(b []byte) (major, minor int, err error) {
	bad := fmt.Errorf("server protocol version %q: not an RFB version (want \"RFB xxx.yyy\\n\")", b)
	if len(b) != 12 || string(b[:4]) != "RFB " || b[7] != '.' || b[11] != '\n' {
		return 0, 0, bad
	}
	for _, c := range string(b[4:7]) + string(b[8:11]) {
		if c < '0' || c > '9' {
			return 0, 0, bad
		}
	}
	major, _ = strconv.Atoi(string(b[4:7]))
	minor, _ = strconv.Atoi(string(b[8:11]))
	if major < 3 {
		return 0, 0, fmt.Errorf("server protocol version %q: RFB %d.%d is older than 3.3", b, major, minor)
	}
	return major, minor, nil
}

func (s *session) security() error {
	if s.minor == 3 {
		// RFB 3.3: the server decides alone and sends a 32-bit type.
		t, err := s.u32()
		if err != nil {
			return fmt.Errorf("read security type: %w", err)
		}
		switch t {
		case 0:
			return s.refused("server refused the connection")
		case securityNone:
			return nil
		default:
			return fmt.Errorf("server requires security type %s; only %s is supported", securityName(int(t)), securityName(securityNone))
		}
	}
	n, err := s.r.ReadByte()
	if err != nil {
		return fmt.Errorf("read number of security types: %w", err)
	}
	if n == 0 {
		return s.refused("server refused the connection")
	}
	types := make([]byte, n)
	if _, err := io.ReadFull(s.r, types); err != nil {
		return fmt.Errorf("read %d security types: %w", n, err)
	}
	found := false
	for _, t := range types {
		found = found || t == securityNone
	}
	if !found {
		names := make([]string, len(types))
		for i, t := range types {
			names[i] = securityName(int(t))
		}
		return fmt.Errorf("server offers security types %s; only %s is supported", strings.Join(names, ", "), securityName(securityNone))
	}
	if _, err := s.w.Write([]byte{securityNone}); err != nil {
		return fmt.Errorf("write security type %s: %w", securityName(securityNone), err)
	}
	if s.minor < 8 {
		// Before 3.8 no SecurityResult follows the None type.
		return nil
	}
	res, err := s.u32()
	if err != nil {
		return fmt.Errorf("read SecurityResult: %w", err)
	}
	if res != 0 {
		return s.refused(fmt.Sprintf("server rejected security type %s (SecurityResult %d)", securityName(securityNone), res))
	}
	return nil
}

// refused reads the reason string that follows a refusal and returns it as an
// error.
func (s *session) refused(what string) error {
	reason, err := s.str()
	if err != nil {
		return fmt.Errorf("%s, and reading its reason failed: %w", what, err)
	}
	return fmt.Errorf("%s: %q", what, reason)
}

func (s *session) serverInit() error {
	var b [20]byte // width, height, pixel format; the name follows
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return fmt.Errorf("read ServerInit: %w", noEOF(err))
	}
	w := int(binary.BigEndian.Uint16(b[0:2]))
	h := int(binary.BigEndian.Uint16(b[2:4]))
	name, err := s.str()
	if err != nil {
		return fmt.Errorf("read ServerInit desktop name: %w", err)
	}
	s.name = name
	if err := s.resize(w, h); err != nil {
		return fmt.Errorf("read ServerInit of %q: %w", name, err)
	}
	// Whatever the server's own format, ask for one we can copy without a
	// colour map: 32 bits per pixel, true colour, little-endian, 8 bits per
	// channel with red in bits 16-23, green 8-15 and blue 0-7.
	setPixelFormat := []byte{
		0, 0, 0, 0, // message type, padding
		32, 24, 0, 1, // bits per pixel, depth, big-endian, true colour
		0, 255, 0, 255, 0, 255, // red, green, blue max
		16, 8, 0, // red, green, blue shift
		0, 0, 0, // padding
	}
	if _, err := s.w.Write(setPixelFormat); err != nil {
		return fmt.Errorf("write SetPixelFormat: %w", err)
	}
	encodings := []int32{encodingCopyRect, encodingRaw, encodingDesktopSize}
	msg := make([]byte, 4, 4+4*len(encodings))
	msg[0] = 2
	binary.BigEndian.PutUint16(msg[2:4], uint16(len(encodings)))
	for _, e := range encodings {
		msg = binary.BigEndian.AppendUint32(msg, uint32(e))
	}
	if _, err := s.w.Write(msg); err != nil {
		return fmt.Errorf("write SetEncodings: %w", err)
	}
	return nil
}

// resize replaces the framebuffer, refusing sizes that are empty or larger
// than the client admits.
func (s *session) resize(w, h int) error {
	if w == 0 || h == 0 {
		return fmt.Errorf("framebuffer of %dx%d has no pixels", w, h)
	}
	if w*h > s.maxPixels {
		return fmt.Errorf("framebuffer of %dx%d exceeds the limit of %d pixels", w, h, s.maxPixels)
	}
	s.fb = image.NewRGBA(image.Rect(0, 0, w, h))
	return nil
}

func (s *session) u32() (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

// str reads a string prefixed by its 32-bit length.
func (s *session) str() (string, error) {
	n, err := s.u32()
	if err != nil {
		return "", err
	}
	if n > maxStringLen {
		return "", fmt.Errorf("string of %d bytes exceeds the limit of %d", n, maxStringLen)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		return "", fmt.Errorf("string of %d bytes: %w", n, noEOF(err))
	}
	return string(b), nil
}

func securityName(t int) string {
	names := map[int]string{
		0: "Invalid", 1: "None", 2: "VNC Authentication", 5: "RA2", 6: "RA2ne",
		16: "Tight", 17: "Ultra", 18: "TLS", 19: "VeNCrypt", 20: "SASL",
	}
	if n, ok := names[t]; ok {
		return fmt.Sprintf("%d (%s)", t, n)
	}
	return strconv.Itoa(t)
}
