package vnc

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"io"
	"sync/atomic"
	"time"
)

// defaultMaxPixels admits a 4096x4096 screen (64 MiB as RGBA), far more than a
// VM's boot screen, while keeping a malformed size field from costing gigabytes.
const defaultMaxPixels = 4096 * 4096

// Option configures a Client.
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

type config struct {
	maxPixels int
}

// WithMaxPixels refuses framebuffers of more than n pixels (default 4096x4096).
func WithMaxPixels(n int) Option {
	return optionFunc(func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("max pixels %d: want a positive number", n)
		}
		c.maxPixels = n
		return nil
	})
}

// Client is a connected RFB session. It is not safe for concurrent use,
// except that Close may be called at any time to abort a running operation.
type Client struct {
	conn    io.ReadWriter
	version string
	name    string
	s       *session // nil once an operation failed or was abandoned
	err     error    // why s is nil
	closed  atomic.Bool
}

// Connect performs the RFB handshake on conn, which the Client then owns.
func Connect(ctx context.Context, conn io.ReadWriter, opts ...Option) (*Client, error) {
	cfg := config{maxPixels: defaultMaxPixels}
	for _, o := range opts {
		if err := o.apply(&cfg); err != nil {
			closeStream(conn)
			return nil, fmt.Errorf("connect to vnc server: %w", err)
		}
	}
	s := &session{r: bufio.NewReaderSize(conn, 64<<10), w: conn, maxPixels: cfg.maxPixels}
	if err := run(ctx, conn, s.handshake); err != nil {
		closeStream(conn)
		return nil, fmt.Errorf("connect to vnc server: %w", err)
	}
	return &Client{conn: conn, version: s.version(), name: s.name, s: s}, nil
}

// Screenshot connects over conn, captures the whole screen once, and closes conn.
func Screenshot(ctx context.Context, conn io.ReadWriter, opts ...Option) (*image.RGBA, error) {
	c, err := Connect(ctx, conn, opts...)
	if err != nil {
		return nil, err
	}
	img, err := c.Capture(ctx)
	if cerr := c.Close(); err == nil && cerr != nil {
		return nil, fmt.Errorf("close vnc stream: %w", cerr)
	}
	return img, err
}

// Name returns the desktop name the server announced (QEMU's -name, or "QEMU").
func (c *Client) Name() string { return c.name }

// ProtocolVersion returns the RFB version agreed on: "3.3", "3.7" or "3.8".
func (c *Client) ProtocolVersion() string { return c.version }

// Capture asks for the whole screen and returns a copy of it once the server
// has sent it.
func (c *Client) Capture(ctx context.Context) (*image.RGBA, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("capture screen of %q: client closed", c.name)
	}
	if c.s == nil {
		return nil, fmt.Errorf("capture screen of %q: %w", c.name, c.err)
	}
	s := c.s
	if err := run(ctx, c.conn, s.capture); err != nil {
		// The stream may be mid-message (or still being read by an abandoned
		// goroutine): no later operation could make sense of it.
		c.s, c.err = nil, fmt.Errorf("an earlier capture failed: %w", err)
		return nil, fmt.Errorf("capture screen of %q: %w", c.name, err)
	}
	img := image.NewRGBA(s.fb.Rect)
	copy(img.Pix, s.fb.Pix)
	return img, nil
}

// Close closes the stream if it is an io.Closer.
func (c *Client) Close() error {
	c.closed.Store(true)
	if cl, ok := c.conn.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// run performs f in its own goroutine so that ctx can end it: a blocked read
// on an arbitrary stream is interrupted by closing the stream (or, failing
// that, expiring its deadline); a stream that allows neither is abandoned.
func run(ctx context.Context, conn io.ReadWriter, f func() error) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		return err
	case <-ctx.Done():
		interrupt(conn)
		return context.Cause(ctx)
	}
}

func interrupt(conn io.ReadWriter) {
	if d, ok := conn.(interface{ SetDeadline(time.Time) error }); ok {
		_ = d.SetDeadline(time.Unix(1, 0))
	}
	closeStream(conn)
}

func closeStream(conn io.ReadWriter) {
	if cl, ok := conn.(io.Closer); ok {
		_ = cl.Close()
	}
}
