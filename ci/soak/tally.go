package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pxe-conformance/pxe-conformance/framework/results"
)

// tally counts each spec's outcomes over the runs.
type tally struct {
	runs  int
	specs map[string]*outcome
	// order keeps the specs in the order the first run reported them.
	order []string
	// broken lists runs that left no report, each with why.
	broken []string
}

type outcome struct {
	passed, failed, skipped int
	// failures says, per failed run, the run, the failure's first line and the spec's
	// artifacts folder.
	failures []string
}

// add counts one run's spec reports (It nodes only) and returns how many passed and failed.
func (t *tally) add(run int, dir string, r types.Report) (passed, failed int) {
	t.runs++
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			continue
		}
		o := t.spec(s.FullText())
		switch {
		case s.State == types.SpecStatePassed:
			o.passed++
			passed++
		case s.State.Is(types.SpecStateFailureStates):
			o.failed++
			failed++
			o.failures = append(o.failures, fmt.Sprintf("run %02d: %s: %s (%s)",
				run, s.State, firstLine(s.Failure.Message), results.SpecDir(dir, s)))
		default:
			o.skipped++
		}
	}
	// Setup and teardown failures belong to no spec but fail the run all the same.
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt && s.State.Is(types.SpecStateFailureStates) {
			o := t.spec(fmt.Sprintf("[%s]", s.LeafNodeType))
			o.failed++
			failed++
			o.failures = append(o.failures, fmt.Sprintf("run %02d: %s", run, firstLine(s.Failure.Message)))
		}
	}
	return passed, failed
}

// addBroken records a run that left no report.
func (t *tally) addBroken(run int, why string) {
	t.runs++
	t.broken = append(t.broken, fmt.Sprintf("run %02d: %s", run, why))
}

func (t *tally) spec(name string) *outcome {
	if t.specs == nil {
		t.specs = map[string]*outcome{}
	}
	o, ok := t.specs[name]
	if !ok {
		o = &outcome{}
		t.specs[name] = o
		t.order = append(t.order, name)
	}
	return o
}

// failures counts failed specs over all runs, and runs that left no report.
func (t *tally) failures() int {
	n := len(t.broken)
	for _, o := range t.specs {
		n += o.failed
	}
	return n
}

// table is the soak's result as Markdown: one row per spec, then every failure.
func (t *tally) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Soak: %d runs\n\n| spec | passed | failed | skipped |\n|---|---|---|---|\n", t.runs)
	for _, name := range t.order {
		o := t.specs[name]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", strings.ReplaceAll(name, "|", `\|`), o.passed, o.failed, o.skipped)
	}
	var all []string
	for _, name := range t.order {
		for _, f := range t.specs[name].failures {
			all = append(all, fmt.Sprintf("- %s — %s", name, f))
		}
	}
	for _, f := range t.broken {
		all = append(all, "- "+f)
	}
	slices.Sort(all)
	if len(all) > 0 {
		b.WriteString("\nFailures:\n\n" + strings.Join(all, "\n") + "\n")
	} else {
		b.WriteString("\nNo failures.\n")
	}
	return b.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
