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
	steps    []StepTime
}

// StepTime is one finished step: its name, when it started and how long it took.
type StepTime struct {
	Name    string        `json:"name"`
	Start   time.Time     `json:"start"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Failed  bool          `json:"failed,omitempty"`
}

// Steps returns the steps finished so far, in the order they ended.
func (p *Progress) Steps() []StepTime {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]StepTime(nil), p.steps...)
}

func (p *Progress) record(name string, start time.Time, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps = append(p.steps, StepTime{Name: name, Start: start, Elapsed: time.Since(start), Failed: err != nil})
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
	p.record(name, start, err)
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
