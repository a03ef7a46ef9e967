package main

import (
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func spec(text string, state types.SpecState, msg string) types.SpecReport {
	return types.SpecReport{
		LeafNodeType: types.NodeTypeIt, LeafNodeText: text, State: state,
		Failure: types.Failure{Message: msg},
	}
}

func TestTallyCountsEverySpecAndNamesEachFailure(t *testing.T) {
	var tl tally
	tl.add(1, "/a/run-01", types.Report{SpecReports: types.SpecReports{
		spec("boots", types.SpecStatePassed, ""),
		spec("vlan", types.SpecStateSkipped, ""),
	}})
	p, f := tl.add(2, "/a/run-02", types.Report{SpecReports: types.SpecReports{
		spec("boots", types.SpecStateFailed, "DHCP: no answer\nmore detail"),
		spec("vlan", types.SpecStateSkipped, ""),
		{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStateFailed, Failure: types.Failure{Message: "namespace left"}},
	}})
	if p != 0 || f != 2 {
		t.Errorf("run 2: %d passed, %d failed, want 0 and 2", p, f)
	}
	tl.addBroken(3, "no suite report")
	if n := tl.failures(); n != 3 {
		t.Errorf("failures() = %d, want 3", n)
	}
	got := tl.table()
	for _, want := range []string{
		"## Soak: 3 runs",
		"| boots | 1 | 1 | 0 |",
		"| vlan | 0 | 0 | 2 |",
		"| [AfterSuite] | 0 | 1 | 0 |",
		"- boots — run 02: failed: DHCP: no answer (/a/run-02/boots)",
		"- run 03: no suite report",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "more detail") {
		t.Errorf("table holds more than a failure's first line:\n%s", got)
	}
}

func TestTallyWithoutFailuresSaysSo(t *testing.T) {
	var tl tally
	tl.add(1, "/a", types.Report{SpecReports: types.SpecReports{spec("boots", types.SpecStatePassed, "")}})
	if tl.failures() != 0 || !strings.Contains(tl.table(), "No failures.") {
		t.Errorf("a clean soak reads:\n%s", tl.table())
	}
}
