package lab

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Step is one step of the documented procedure as the lab ran it.
type Step struct {
	// Name is the step in the procedure's words.
	Name string
	// Detail is what the step observed (an address, a fingerprint, a byte count).
	Detail string
	// Err is why the step failed; nil when it passed.
	Err error
	// Start and End are offsets from the start of the run.
	Start, End time.Duration
	// Skipped is set when an earlier failure kept the step from running.
	Skipped bool
}

// Verdict records the steps of one run, in order, and prints them as a step-by-step verdict.
type Verdict struct {
	// Title names the run (firmware, MAC).
	Title string

	mu     sync.Mutex
	t0     time.Time
	steps  []Step
	failed bool
	out    io.Writer
}

// NewVerdict starts a verdict whose timings count from now. Each step is also printed to out
// (when not nil) as soon as it ends, so a long run shows progress.
func NewVerdict(title string, out io.Writer) *Verdict {
	return &Verdict{Title: title, t0: time.Now(), out: out}
}

// Since is the time elapsed since the verdict started.
func (v *Verdict) Since() time.Duration { return time.Since(v.t0) }

// Do runs fn as the named step, unless an earlier step failed, in which case the step is
// recorded as skipped. fn returns what it observed, for the verdict's detail column.
func (v *Verdict) Do(name string, fn func() (string, error)) error {
	v.mu.Lock()
	if v.failed {
		v.steps = append(v.steps, Step{Name: name, Skipped: true})
		v.mu.Unlock()
		return nil
	}
	v.mu.Unlock()
	start := time.Since(v.t0)
	detail, err := fn()
	s := Step{Name: name, Detail: detail, Err: err, Start: start, End: time.Since(v.t0)}
	v.mu.Lock()
	v.steps = append(v.steps, s)
	if err != nil {
		v.failed = true
	}
	v.mu.Unlock()
	if v.out != nil {
		fmt.Fprintln(v.out, formatStep(len(v.steps), s))
	}
	return err
}

// Skip records a step that does not apply to this run, with the reason; it does not fail the
// verdict.
func (v *Verdict) Skip(name, reason string) {
	s := Step{Name: name, Detail: reason, Skipped: true, Start: time.Since(v.t0), End: time.Since(v.t0)}
	v.mu.Lock()
	v.steps = append(v.steps, s)
	n := len(v.steps)
	v.mu.Unlock()
	if v.out != nil {
		fmt.Fprintln(v.out, formatStep(n, s))
	}
}

// Steps returns the steps recorded so far.
func (v *Verdict) Steps() []Step {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]Step(nil), v.steps...)
}

// Passed reports whether every step ran and passed.
func (v *Verdict) Passed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.failed && len(v.steps) > 0
}

// Err is the first failed step's error, named after the step.
func (v *Verdict) Err() error {
	for _, s := range v.Steps() {
		if s.Err != nil {
			return fmt.Errorf("%s: %w", s.Name, s.Err)
		}
	}
	return nil
}

func formatStep(n int, s Step) string {
	status := "PASS"
	switch {
	case s.Skipped:
		status = "SKIP"
	case s.Err != nil:
		status = "FAIL"
	}
	line := fmt.Sprintf("%2d. %-4s %7.2fs %-58s", n, status, s.End.Seconds(), s.Name)
	if s.Skipped {
		why := s.Detail
		if why == "" {
			why = "not run: an earlier step failed"
		}
		return strings.TrimRight(line, " ") + "  (" + why + ")"
	}
	if s.Detail != "" {
		line += "  " + s.Detail
	}
	if s.Err != nil {
		line += "\n         " + strings.ReplaceAll(s.Err.Error(), "\n", "\n         ")
	}
	return strings.TrimRight(line, " ")
}

// Print writes the whole verdict: a header, one line per step with its end time since the start,
// and the closing Summary.
func (v *Verdict) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s\n", v.Title)
	for i, s := range v.Steps() {
		fmt.Fprintln(w, formatStep(i+1, s))
	}
	v.PrintSummary(w)
}

// PrintSummary writes the closing line: PASS with the step count and total time, or FAIL with
// the first failed step's error.
func (v *Verdict) PrintSummary(w io.Writer) {
	steps := v.Steps()
	if v.Passed() {
		fmt.Fprintf(w, "== PASS: %d steps in %.2fs\n", len(steps), steps[len(steps)-1].End.Seconds())
		return
	}
	fmt.Fprintf(w, "== FAIL: %v\n", v.Err())
}
