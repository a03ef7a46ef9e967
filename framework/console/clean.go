package console

// cleanState is where the cleaner is inside an escape sequence or an erase
// idiom. The state survives between reads because a serial stream splits
// sequences at arbitrary byte boundaries.
type cleanState uint8

const (
	stText      cleanState = iota
	stEsc                  // after ESC
	stEscInter             // after ESC and intermediate bytes, e.g. "ESC (" before the charset's final byte
	stCSI                  // inside "ESC [" parameters
	stString               // inside OSC, DCS, SOS, PM or APC, until BEL or ST
	stStringEsc            // ESC seen inside a string: ST ("ESC \") or a new escape
	stBS                   // after a backspace
	stBSSpace              // after backspace and space: "\b \b" erases one character
)

// Escape sequences longer than these are garbage (a lost final byte, binary
// noise on the line); giving up on them keeps later text from vanishing.
const (
	maxCSILen    = 64
	maxStringLen = 1024
)

// cleaner removes terminal control sequences from a byte stream. It
// implements the parts of the ECMA-48/VT100 grammar that firmware and Linux
// emit on a serial line: CSI (cursor positioning, colours, erase), OSC and
// the other string sequences, charset designations such as "ESC ( B",
// single-character escapes such as "ESC c", and backspace erasure.
type cleaner struct {
	state cleanState
	n     int // bytes consumed by the current escape sequence
}

// Clean returns the printable text of a whole raw transcript (WriteTranscript's file), as the
// expecter sees it: for a reader of the transcript, not for matching.
func Clean(raw []byte) []byte {
	var c cleaner
	return c.feed(nil, raw)
}

// reset forgets a half-read sequence, for a new stream whose first bytes
// have nothing to do with where the old one stopped.
func (c *cleaner) reset() {
	c.state = stText
	c.n = 0
}

// feed appends the printable text of p to dst and returns it.
func (c *cleaner) feed(dst, p []byte) []byte {
	for i := 0; i < len(p); {
		var consumed bool
		dst, consumed = c.step(dst, p[i])
		if consumed {
			i++
		}
	}
	return dst
}

// step handles one byte. It returns consumed=false when the byte ended the
// current state without belonging to it and must be looked at again as
// text (a control character that aborts an escape sequence).
func (c *cleaner) step(dst []byte, b byte) ([]byte, bool) {
	switch c.state {
	case stText:
		return c.text(dst, b), true

	case stBS:
		if b == ' ' {
			c.state = stBSSpace
			return dst, true
		}
		c.state = stText
		return dst, false

	case stBSSpace:
		c.state = stText
		if b == '\b' {
			return dst, true
		}
		return append(dst, ' '), false

	case stEsc:
		c.n++
		switch {
		case b == '[':
			c.state = stCSI
		case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
			c.state = stString
		case b >= 0x20 && b <= 0x2f:
			c.state = stEscInter
		case b >= 0x30 && b <= 0x7e:
			c.state = stText
		case b == 0x1b:
			c.n = 1
		case b == 0x18 || b == 0x1a:
			c.state = stText
		default:
			c.state = stText
			return dst, false
		}
		return dst, true

	case stEscInter:
		c.n++
		switch {
		case b >= 0x20 && b <= 0x2f:
			if c.n > maxCSILen {
				c.state = stText
			}
		case b >= 0x30 && b <= 0x7e:
			c.state = stText
		case b == 0x1b:
			c.state, c.n = stEsc, 1
		default:
			c.state = stText
			return dst, false
		}
		return dst, true

	case stCSI:
		c.n++
		switch {
		case b >= 0x20 && b <= 0x3f:
			if c.n > maxCSILen {
				c.state = stText
			}
		case b >= 0x40 && b <= 0x7e:
			c.state = stText
		case b == 0x1b:
			c.state, c.n = stEsc, 1
		case b == 0x18 || b == 0x1a:
			c.state = stText
		case b == '\n':
			// A terminal executes C0 controls inside a sequence; keep
			// the line break so lines do not run together.
			return append(dst, '\n'), true
		case b < 0x20 || b == 0x7f:
			// Executed by a terminal, invisible here.
		default:
			c.state = stText
			return dst, false
		}
		return dst, true

	case stString:
		c.n++
		switch {
		case b == 0x07 || b == 0x18 || b == 0x1a:
			c.state = stText
		case b == 0x1b:
			c.state = stStringEsc
		case c.n > maxStringLen:
			c.state = stText
		}
		return dst, true

	case stStringEsc:
		if b == '\\' {
			c.state = stText
			return dst, true
		}
		c.state, c.n = stEsc, 1
		return dst, false
	}
	c.state = stText
	return dst, false
}

// text handles a byte outside any sequence.
func (c *cleaner) text(dst []byte, b byte) []byte {
	switch {
	case b == 0x1b:
		c.state, c.n = stEsc, 1
	case b == '\b':
		c.state = stBS
	case b == '\n' || b == '\t':
		dst = append(dst, b)
	case b < 0x20 || b == 0x7f:
		// CR, NUL, BEL and the rest move a cursor or ring a bell; they
		// carry no text, and dropping CR turns "\r\n" into "\n".
	default:
		// Bytes >= 0x80 are kept: they are UTF-8, not 8-bit C1 controls.
		dst = append(dst, b)
	}
	return dst
}
