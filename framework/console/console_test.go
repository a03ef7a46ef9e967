package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds waits that must end on their own, so that a bug
// fails the test with a message instead of hanging it.
const testTimeout = time.Minute

// stream is one end of a serial line built from two pipes.
type stream struct {
	io.Reader
	io.Writer
	closers []io.Closer
}

func (s *stream) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// guestSide is what the guest writes to and reads from.
type guestSide struct {
	out *io.PipeWriter // guest output, read by the Console
	in  *io.PipeReader // guest input, written by the Console
}

// newLine returns a console end and a guest end of a fresh serial line.
func newLine() (*stream, guestSide) {
	outR, outW := io.Pipe()
	inR, inW := io.Pipe()
	return &stream{Reader: outR, Writer: inW, closers: []io.Closer{outR, inW}}, guestSide{out: outW, in: inR}
}

// newTestConsole returns a Console on a fresh serial line, closed when the
// test ends.
func newTestConsole(t *testing.T, opts ...Option) (*Console, guestSide) {
	t.Helper()
	s, g := newLine()
	c, err := New(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		g.out.Close()
		g.in.Close()
	})
	return c, g
}

// write writes guest output; the pipe returns once the Console read it.
// It may run in its own goroutine, so it reports with Errorf.
func (g guestSide) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(g.out, s); err != nil {
		t.Errorf("write guest output: %v", err)
	}
}

// feed writes guest output and waits until the Console recorded it: the
// pipe returns as soon as the reader took the bytes, before it stored them.
func (g guestSide) feed(t *testing.T, c *Console, s string) {
	t.Helper()
	c.mu.Lock()
	want := len(c.raw) + len(s)
	c.mu.Unlock()
	g.write(t, s)
	timeout := time.After(testTimeout)
	for {
		c.mu.Lock()
		n, changed := len(c.raw), c.changed
		c.mu.Unlock()
		if n >= want {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("console recorded %d bytes, want %d", n, want)
		}
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestExpectMatchesTextWithEscapesBetweenLetters(t *testing.T) {
	c, g := newTestConsole(t)
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Expect(ctx, regexp.MustCompile(`iPXE \(PCI`))
		done <- err
	}()
	// Each write is one read: the escapes are split between reads.
	for _, s := range []string{"\x1bc\x1b[2Ji\x1b[1;", "1HP\x1b[0", "mX", "E (PCI 00:02.0)\r\n"} {
		g.write(t, s)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestExpectReturnsSubmatchesAndAdvancesCursor(t *testing.T) {
	c, g := newTestConsole(t)
	ctx := testContext(t)
	g.write(t, "PXEC-READY mac=de:00:00:00:00:de iface=eth1\r\nboot 1\r\n")
	m, err := c.Expect(ctx, regexp.MustCompile(`PXEC-READY mac=(\S+) iface=(\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PXEC-READY mac=de:00:00:00:00:de iface=eth1", "de:00:00:00:00:de", "eth1"}; !slices.Equal(m, want) {
		t.Errorf("Expect = %q, want %q", m, want)
	}
	bootN := regexp.MustCompile(`boot (\d+)`)
	if m, err = c.Expect(ctx, bootN); err != nil || m[1] != "1" {
		t.Fatalf("first Expect(boot) = %q, %v; want boot 1", m, err)
	}
	// "boot 1" is consumed: the next Expect must wait for new output.
	go g.write(t, "boot 2\r\n")
	if m, err = c.Expect(ctx, bootN); err != nil || m[1] != "2" {
		t.Fatalf("second Expect(boot) = %q, %v; want boot 2, not the stale boot 1", m, err)
	}
}

func TestExpectFailsFastOnFailPattern(t *testing.T) {
	raw, err := os.ReadFile("testdata/seabios-ipxe-no-dhcp.raw")
	if err != nil {
		t.Fatal(err)
	}
	c, g := newTestConsole(t)
	// The stream stays open: only the fail pattern can end this wait early.
	go g.write(t, string(raw))
	_, err = c.Expect(testContext(t), regexp.MustCompile(`PXEC-READY`),
		FailOn(Phrase("Connection timed out"), Phrase("No configuration methods succeeded")))
	if !errors.Is(err, ErrFailPattern) {
		t.Fatalf("Expect = %v, want ErrFailPattern", err)
	}
	var ee *ExpectError
	if !errors.As(err, &ee) {
		t.Fatalf("Expect error %T is no *ExpectError", err)
	}
	if ee.Match != "No configuration methods \nsucceeded" {
		t.Errorf("Match = %q, want the wrapped iPXE message", ee.Match)
	}
	for _, want := range []string{"/PXEC-READY/", "No configuration methods", "Configuring (net0 de:00:00:00:00:de)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestExpectPrefersAwaitedPatternSeenBeforeFailPattern(t *testing.T) {
	c, g := newTestConsole(t)
	g.write(t, "PXEC-READY mac=de:00:00:00:00:de\r\nConnection timed out\r\n")
	if _, err := c.Expect(testContext(t), regexp.MustCompile(`PXEC-READY`), FailOn(Phrase("Connection timed out"))); err != nil {
		t.Fatalf("Expect = %v, want the ready line that came first", err)
	}
}

func TestExpectAnyPrefersEarliestMatch(t *testing.T) {
	c, g := newTestConsole(t)
	g.write(t, "Nothing to boot: No such file or directory\r\nNo bootable device.\r\n")
	i, m, err := c.ExpectAny(testContext(t), regexp.MustCompile(`No bootable device`), regexp.MustCompile(`Nothing to boot`))
	if err != nil {
		t.Fatal(err)
	}
	if i != 1 || m[0] != "Nothing to boot" {
		t.Errorf("ExpectAny = %d, %q; want 1, %q", i, m, "Nothing to boot")
	}
}

func TestExpectReturnsAtOnceWhenStreamEnds(t *testing.T) {
	c, g := newTestConsole(t)
	g.write(t, "[    6.9] Run /init as init process\r\n")
	done := make(chan error, 1)
	go func() {
		_, err := c.Expect(context.Background(), regexp.MustCompile(`PXEC-READY`))
		done <- err
	}()
	g.out.CloseWithError(io.ErrUnexpectedEOF)
	err := <-done
	if !errors.Is(err, ErrStreamEnded) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Expect = %v, want ErrStreamEnded wrapping the stream's error", err)
	}
	for _, want := range []string{"/PXEC-READY/", "unexpected EOF", "Run /init as init process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestExpectTimeoutNamesPatternAndLastLines(t *testing.T) {
	c, g := newTestConsole(t)
	var out strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&out, "\x1b[0mline %d\r\n", i)
	}
	g.feed(t, c, out.String())
	ctx, cancel := context.WithTimeout(t.Context(), 0)
	defer cancel()
	_, err := c.Expect(ctx, regexp.MustCompile(`login:`), Named(`"login:" prompt`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Expect = %v, want context.DeadlineExceeded", err)
	}
	msg := err.Error()
	for _, want := range []string{`expect "login:" prompt on console`, "context deadline exceeded", "| line 11\n", "| line 30"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "| line 10\n") {
		t.Errorf("error has more than %d lines:\n%s", tailLines, msg)
	}
}

func TestExpectErrorSaysWhenConsoleWasSilent(t *testing.T) {
	c, _ := newTestConsole(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Expect(ctx, regexp.MustCompile(`iPXE`))
	if err == nil || !strings.Contains(err.Error(), "console printed nothing") {
		t.Errorf("Expect = %v, want an error saying the console printed nothing", err)
	}
}

func TestDiscardSkipsEarlierOutput(t *testing.T) {
	c, g := newTestConsole(t)
	g.feed(t, c, "pxec-guest login: ")
	c.Discard()
	go g.write(t, "\r\npxec-guest login: ")
	m, err := c.Expect(testContext(t), regexp.MustCompile(`(?s).*login: `))
	if err != nil {
		t.Fatal(err)
	}
	if m[0] != "\npxec-guest login: " {
		t.Errorf("Expect after Discard = %q, want only the new prompt", m[0])
	}
}

func TestCloseEndsWaitingExpect(t *testing.T) {
	c, _ := newTestConsole(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Expect(context.Background(), regexp.MustCompile(`never`))
		done <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Expect after Close = %v, want ErrClosed", err)
	}
	if err := c.Send(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestAttachContinuesTranscriptOnNewStream(t *testing.T) {
	c, g1 := newTestConsole(t)
	ctx := testContext(t)
	// The first stream dies in the middle of an escape sequence.
	g1.write(t, "before reconnect\r\nhalf\x1b[")
	g1.out.Close()
	if _, err := c.Expect(ctx, regexp.MustCompile(`after`)); !errors.Is(err, ErrStreamEnded) || !errors.Is(err, io.EOF) {
		t.Fatalf("Expect on ended stream = %v, want ErrStreamEnded and io.EOF", err)
	}

	s2, g2 := newLine()
	t.Cleanup(func() { g2.out.Close(); g2.in.Close() })
	if err := c.Attach(s2); err != nil {
		t.Fatal(err)
	}
	go g2.write(t, "hello after reconnect\r\n")
	if _, err := c.Expect(ctx, regexp.MustCompile(`hello after reconnect`)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Text(), "before reconnect\nhalf\nhello after reconnect\n"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got, want := string(c.Transcript()), "before reconnect\r\nhalf\x1b[hello after reconnect\r\n"; got != want {
		t.Errorf("Transcript = %q, want %q", got, want)
	}

	// Input goes to the new stream.
	sent := make(chan error, 1)
	go func() { sent <- c.Send(ctx, "root\n") }()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(g2.in, buf); err != nil || string(buf) != "root\n" {
		t.Errorf("new stream got %q, %v; want the sent input", buf, err)
	}
	if err := <-sent; err != nil {
		t.Error(err)
	}
}

func TestAttachClosesOldStream(t *testing.T) {
	c, g1 := newTestConsole(t)
	s2, g2 := newLine()
	t.Cleanup(func() { g2.out.Close(); g2.in.Close() })
	if err := c.Attach(s2); err != nil {
		t.Fatal(err)
	}
	if _, err := g1.out.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write to old stream after Attach = %v, want io.ErrClosedPipe", err)
	}
}

func TestWithHistoryContinuesEarlierTranscript(t *testing.T) {
	history := []byte("\x1b[0mpxec-guest login: \r\nPXEC-READY mac=de:00:00:00:00:de\r\n")
	c, g := newTestConsole(t, WithHistory(history))
	ctx := testContext(t)
	go g.write(t, "PXEC-READY mac=aa:00:00:00:00:01\r\n")
	m, err := c.Expect(ctx, regexp.MustCompile(`PXEC-READY mac=(\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "aa:00:00:00:00:01" {
		t.Errorf("Expect matched %q from the history, want the new line", m[0])
	}
	if got := c.Transcript(); !bytes.HasPrefix(got, history) {
		t.Errorf("Transcript = %q, want it to start with the history", got)
	}
}

func TestWriteTranscriptKeepsRawBytes(t *testing.T) {
	var tee bytes.Buffer
	c, g := newTestConsole(t, WithTee(&tee))
	raw := "\x1bc\x1b[2J\x00SeaBIOS\r\n\xc3\xbc end\r\n"
	g.write(t, raw)
	if _, err := c.Expect(testContext(t), regexp.MustCompile(`end`)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "serial.log")
	if err := c.WriteTranscript(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != raw {
		t.Errorf("transcript file = %q, want %q", got, raw)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if tee.String() != raw {
		t.Errorf("tee got %q, want %q", tee.String(), raw)
	}
	if got, want := c.Text(), "SeaBIOS\nü end\n"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

func TestWriteTranscriptNamesPathOnError(t *testing.T) {
	c, _ := newTestConsole(t)
	path := filepath.Join(t.TempDir(), "missing", "serial.log")
	if err := c.WriteTranscript(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteTranscript = %v, want an error naming %s", err, path)
	}
}

func TestSendHonoursContextWhenStreamBlocks(t *testing.T) {
	// Nobody reads the guest's input, so the write blocks.
	c, g := newTestConsole(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Send(ctx, "secret-password\n") }()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v, want context.Canceled", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("Send error %q repeats the input", err)
	}
	g.in.Close()
}

func TestNewRejectsBadOptions(t *testing.T) {
	s, g := newLine()
	defer g.out.Close()
	defer g.in.Close()
	for _, opt := range []Option{WithNewline(""), WithReprompt(0), WithTee(nil)} {
		if c, err := New(s, opt); err == nil {
			c.Close()
			t.Errorf("New with a bad option succeeded")
		}
	}
	if _, err := New(nil); err == nil {
		t.Errorf("New(nil) succeeded")
	}
}

func TestConcurrentExpectsEachConsumeOneMatch(t *testing.T) {
	c, g := newTestConsole(t)
	ctx := testContext(t)
	re := regexp.MustCompile(`tick (\d+)\n`)
	const n = 8
	got := make(chan string, n)
	for range n {
		go func() {
			m, err := c.Expect(ctx, re)
			if err != nil {
				t.Error(err)
				got <- ""
				return
			}
			got <- m[1]
		}()
	}
	for i := range n {
		g.write(t, fmt.Sprintf("\x1b[0mtick %d\r\n", i))
	}
	seen := map[string]bool{}
	for range n {
		seen[<-got] = true
	}
	if len(seen) != n {
		t.Errorf("%d Expects consumed %d distinct ticks: %v", n, len(seen), seen)
	}
}
