package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

func TestSummarizeCountsOnlyTheCompilingSteps(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	step := func(name string, at, secs int) build.StepTime {
		return build.StepTime{Name: name, Start: t0.Add(time.Duration(at) * time.Second), Elapsed: time.Duration(secs) * time.Second}
	}
	r := report{Start: t0, End: t0.Add(1000 * time.Second), Steps: []build.StepTime{
		step("build kubernetes-v1.34.4: modules", 0, 40),
		step("build kubernetes-v1.34.4", 40, 500),
		step("debootstrap bookworm (node)", 0, 90),
		step("build coredns-v1.12.1", 540, 70),
		step("kubevirt binaries (go build v1.9.0): modules", 0, 60),
		step("kubevirt binaries (go build v1.9.0)", 610, 200),
		step("virt-handler with bridge-binding-without-dummy", 810, 40),
		step("image pxec.local/kind-node:v1.34.4", 850, 30),
	}}
	got := summarize(r).String()
	if want := "images=1000 kubernetes=500 kubevirt=240 coredns=70 other=190"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	table := stepTable(r)
	for _, want := range []string{"COUNTS AS", "other  build kubernetes-v1.34.4: modules", "kubevirt  virt-handler with"} {
		if !strings.Contains(strings.Join(strings.Fields(table), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Index(table, "modules") > strings.Index(table, "build coredns") {
		t.Errorf("steps not in start order:\n%s", table)
	}
}
