package console

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// defaultReprompt is long enough for a getty under TCG emulation to redraw
// its prompt, short enough that a lost prompt costs little.
const defaultReprompt = 5 * time.Second

// ErrClosed is returned by operations on a Console after Close.
var ErrClosed = errors.New("console closed")

// ErrStreamEnded wraps the error that ended the console's stream (io.EOF, a
// websocket close), so callers can tell "reattach and retry" from a timeout.
var ErrStreamEnded = errors.New("console stream ended")

// Console reads a serial console in the background, keeps its transcript,
// and matches expectations against the cleaned text. It is safe for
// concurrent use.
type Console struct {
	mu        sync.Mutex
	raw       []byte
	text      []byte
	cursor    int // offset in text up to which expectations have consumed
	clean     cleaner
	changed   chan struct{} // closed and replaced whenever text, stream or state changes
	rw        io.ReadWriter
	gen       int   // stream generation; readers of replaced streams are ignored
	streamErr error // why the current stream ended, nil while it runs
	closed    bool
	tee       io.Writer
	teeErr    error

	wmu   sync.Mutex   // serialises writes so concurrent Sends do not interleave
	sends atomic.Int64 // completed Sends; tests wait on it to act after a write landed

	newline  string
	reprompt time.Duration
	session  string // random per Console, so markers of an earlier Console never match
	marks    int
}

// Option configures a Console.
type Option interface {
	apply(*Console) error
}

type optionFunc func(*Console) error

func (f optionFunc) apply(c *Console) error { return f(c) }

// WithTee copies every raw byte to w as it arrives, so a live log or an
// artifact file survives even if the test process dies; the first write
// error stops the copying and is returned by Close.
func WithTee(w io.Writer) Option {
	return optionFunc(func(c *Console) error {
		if w == nil {
			return errors.New("tee writer is nil")
		}
		c.tee = w
		return nil
	})
}

// WithHistory starts the Console with the raw transcript of an earlier one
// (after a reconnect), with the cursor at its end so only new output matches.
func WithHistory(raw []byte) Option {
	return optionFunc(func(c *Console) error {
		c.raw = append(c.raw, raw...)
		c.text = c.clean.feed(c.text, raw)
		c.clean.reset()
		c.text = endLine(c.text)
		c.cursor = len(c.text)
		return nil
	})
}

// WithNewline sets what Login and Run type as Enter; the default "\n" suits
// a Linux tty, where "\r" would also work through ICRNL.
func WithNewline(s string) Option {
	return optionFunc(func(c *Console) error {
		if s == "" {
			return errors.New("newline is empty")
		}
		c.newline = s
		return nil
	})
}

// WithReprompt sets how long Login waits for a login prompt before it
// presses Enter again.
func WithReprompt(d time.Duration) Option {
	return optionFunc(func(c *Console) error {
		if d <= 0 {
			return fmt.Errorf("reprompt interval %v is not positive", d)
		}
		c.reprompt = d
		return nil
	})
}

// New starts reading rw and returns its Console; the Console owns rw and
// closes it on Close if it is an io.Closer.
func New(rw io.ReadWriter, opts ...Option) (*Console, error) {
	if rw == nil {
		return nil, errors.New("new console: stream is nil")
	}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("new console: make marker session: %w", err)
	}
	c := &Console{
		changed:  make(chan struct{}),
		newline:  "\n",
		reprompt: defaultReprompt,
		session:  hex.EncodeToString(id[:]),
	}
	for _, o := range opts {
		if err := o.apply(c); err != nil {
			return nil, fmt.Errorf("new console: %w", err)
		}
	}
	c.rw = rw
	go c.read(rw, c.gen)
	return c, nil
}

// Attach replaces the Console's stream, e.g. after KubeVirt's console
// websocket dropped, and closes the old one; the transcript and the cursor
// carry on.
func (c *Console) Attach(rw io.ReadWriter) error {
	if rw == nil {
		return errors.New("attach console stream: stream is nil")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("attach console stream: %w", ErrClosed)
	}
	old := c.rw
	c.rw = rw
	c.gen++
	c.streamErr = nil
	// A sequence cut off by the old stream must not swallow the new one's
	// first bytes, and a half line must not run into the next.
	c.clean.reset()
	c.text = endLine(c.text)
	c.broadcast()
	go c.read(rw, c.gen)
	c.mu.Unlock()

	if cl, ok := old.(io.Closer); ok {
		// The old stream is usually dead already; its close error says
		// nothing about the new one.
		_ = cl.Close()
	}
	return nil
}

// Close stops the Console and closes its stream; waiting expectations
// return ErrClosed. The transcript stays readable.
func (c *Console) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	rw := c.rw
	teeErr := c.teeErr
	c.broadcast()
	c.mu.Unlock()

	var errs []error
	if cl, ok := rw.(io.Closer); ok {
		if err := cl.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close console stream: %w", err))
		}
	}
	if teeErr != nil {
		errs = append(errs, fmt.Errorf("copy console output to tee: %w", teeErr))
	}
	return errors.Join(errs...)
}

// read copies one stream into the Console until the stream fails.
func (c *Console) read(r io.Reader, gen int) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 && !c.add(gen, buf[:n]) {
			return
		}
		if err != nil {
			c.end(gen, err)
			return
		}
	}
}

// add records bytes read from stream generation gen and reports whether
// that stream is still the current one.
func (c *Console) add(gen int, p []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed {
		return false
	}
	c.raw = append(c.raw, p...)
	c.text = c.clean.feed(c.text, p)
	if c.tee != nil && c.teeErr == nil {
		_, c.teeErr = c.tee.Write(p)
	}
	c.broadcast()
	return true
}

// end records why stream generation gen stopped.
func (c *Console) end(gen int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed {
		return
	}
	c.streamErr = err
	c.broadcast()
}

// broadcast wakes every waiter; callers hold c.mu.
func (c *Console) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Send writes s to the console as typed input. It returns when the stream
// accepted the bytes or ctx ends, in which case the write may still
// complete later; the error never repeats s, which may be a password.
func (c *Console) Send(ctx context.Context, s string) error {
	c.mu.Lock()
	rw, closed := c.rw, c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("write %d bytes to console: %w", len(s), ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write %d bytes to console: %w", len(s), err)
	}
	done := make(chan error, 1)
	go func() {
		// A stream that blocks (a stalled websocket) keeps this goroutine
		// until Close or Attach closes it; Send itself honours ctx.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_, err := io.WriteString(rw, s)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write %d bytes to console: %w", len(s), err)
		}
		c.sends.Add(1)
		return nil
	case <-ctx.Done():
		select {
		case err := <-done:
			// The write finished as ctx ended: report what happened to it.
			if err != nil {
				return fmt.Errorf("write %d bytes to console: %w", len(s), err)
			}
			c.sends.Add(1)
			return nil
		default:
			return fmt.Errorf("write %d bytes to console: %w", len(s), ctx.Err())
		}
	}
}

// Discard moves the cursor to the end of the text received so far, so the
// next expectation only sees output that arrives after this call.
func (c *Console) Discard() {
	c.mu.Lock()
	c.cursor = len(c.text)
	c.mu.Unlock()
}

// Transcript returns a copy of every byte received, exactly as received.
func (c *Console) Transcript() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.raw...)
}

// Text returns the cleaned text of everything received.
func (c *Console) Text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.text)
}

// WriteTranscript writes the raw transcript to path, for artifacts.
func (c *Console) WriteTranscript(path string) error {
	if err := os.WriteFile(path, c.Transcript(), 0o644); err != nil {
		return fmt.Errorf("write console transcript %s: %w", path, err)
	}
	return nil
}

// nextMarker returns a marker id that no earlier call, and no other
// Console writing to the same transcript, has used.
func (c *Console) nextMarker() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.marks++
	return fmt.Sprintf("%s%d", c.session, c.marks)
}

// endLine terminates a half line, so text from a new stream starts on a
// line of its own.
func endLine(text []byte) []byte {
	if len(text) > 0 && text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	return text
}
