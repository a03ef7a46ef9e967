package build

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Progress prints one line when a step starts, a heartbeat every interval while it runs, and
// one line with its duration when it ends, so a long cold build never looks hung.
type Progress struct {
	mu       sync.Mutex
	w        io.Writer
	interval time.Duration
}

// NewProgress reports to w, with a heartbeat every interval (30 s when zero).
func NewProgress(w io.Writer, interval time.Duration) *Progress {
	if interval == 0 {
		interval = 30 * time.Second
	}
	return &Progress{w: w, interval: interval}
}

func (p *Progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// Step runs fn as a named step and reports its start, heartbeats and result.
func (p *Progress) Step(name string, fn func() error) error {
	start := time.Now()
	p.printf("==> %s\n", name)
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.printf("    %s: still running (%s)\n", name, time.Since(start).Round(time.Second))
			}
		}
	}()
	err := fn()
	close(stop)
	if err != nil {
		p.printf("<== %s: FAILED after %s\n", name, time.Since(start).Round(100*time.Millisecond))
		return fmt.Errorf("%s: %w", name, err)
	}
	p.printf("<== %s: done in %s\n", name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// Skip reports a step that was not needed, with the reason.
func (p *Progress) Skip(name, why string) {
	p.printf("=== %s: %s\n", name, why)
}
