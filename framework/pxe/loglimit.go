package pxe

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log rate limit: a flood of requests must not become a flood of log lines.
// logBurst lines may pass at once and logRate more per second after that, so
// a hundred machines booting together (some fifteen lines each over half a
// minute) log everything, while a client sending garbage as fast as it can
// costs at most about 25 KB of log per second.
const (
	logRate  = 50
	logBurst = 500
)

// SuppressedMessage is the message of the line that says how many log
// lines the rate limit dropped; its "suppressed" attribute has the count.
const SuppressedMessage = "log lines suppressed by rate limit"

// logLimit is the token bucket that every handler derived from one
// limitedHandler shares.
type logLimit struct {
	now func() time.Time

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// take reports whether one more line may pass and, when it may, how many
// lines were suppressed since the last one that passed.
func (l *logLimit) take() (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else if elapsed := now.Sub(l.last).Seconds(); elapsed > 0 {
		l.tokens = min(logBurst, l.tokens+elapsed*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// drain returns and resets the count of lines suppressed since the last one that passed.
func (l *logLimit) drain() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.suppressed
	l.suppressed = 0
	return n
}

// limitedHandler passes records to next while the shared bucket has
// tokens, drops them otherwise, and puts a SuppressedMessage line with the
// count in front of the first record it passes after dropping some.
type limitedHandler struct {
	next  slog.Handler
	limit *logLimit
}

// newLimitedHandler wraps next in a fresh bucket; now is the clock (time.Now outside tests).
func newLimitedHandler(next slog.Handler, now func() time.Time) *limitedHandler {
	return &limitedHandler{next: next, limit: &logLimit{now: now}}
}

func (h *limitedHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	ok, suppressed := h.limit.take()
	if !ok {
		return nil
	}
	if suppressed > 0 {
		h.report(ctx, r.Time, suppressed)
	}
	return h.next.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &limitedHandler{next: h.next.WithAttrs(attrs), limit: h.limit}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{next: h.next.WithGroup(name), limit: h.limit}
}

// flush reports lines suppressed since the last one that passed, so the
// count of a flood's tail is not lost when nothing is logged after it.
func (h *limitedHandler) flush(ctx context.Context) {
	if n := h.limit.drain(); n > 0 {
		h.report(ctx, h.limit.now(), n)
	}
}

func (h *limitedHandler) report(ctx context.Context, t time.Time, n int) {
	if !h.next.Enabled(ctx, slog.LevelWarn) {
		return
	}
	rec := slog.NewRecord(t, slog.LevelWarn, SuppressedMessage, 0)
	rec.AddAttrs(slog.Int("suppressed", n))
	// A failing log writer has nowhere to report to.
	_ = h.next.Handle(ctx, rec)
}
