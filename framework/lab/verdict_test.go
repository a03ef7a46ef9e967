package lab

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestVerdictStopsAtTheFirstFailureAndSaysSo(t *testing.T) {
	var live bytes.Buffer
	v := NewVerdict("BIOS de:00:00:00:00:de", &live)
	_ = v.Do("Connect a Linux bridge", func() (string, error) { return "pxecbr0", nil })
	err := v.Do("PXE server answers DHCP", func() (string, error) { return "", errors.New("no DHCP answer") })
	if err == nil {
		t.Fatal("Do returned nil for a failing step")
	}
	ran := false
	_ = v.Do("Log in", func() (string, error) { ran = true; return "", nil })
	if ran {
		t.Error("a step after a failure ran")
	}
	if v.Passed() {
		t.Error("Passed() after a failure")
	}
	if got := v.Err(); got == nil || !strings.Contains(got.Error(), "PXE server answers DHCP: no DHCP answer") {
		t.Errorf("Err() = %v", got)
	}
	var out bytes.Buffer
	v.Print(&out)
	text := out.String()
	for _, want := range []string{"PASS", "pxecbr0", "FAIL", "no DHCP answer", "SKIP", "Log in", "== FAIL"} {
		if !strings.Contains(text, want) {
			t.Errorf("verdict lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(live.String(), "no DHCP answer") {
		t.Errorf("live output lacks the failure:\n%s", live.String())
	}
}

func TestVerdictPassesOnlyWhenEveryStepPassed(t *testing.T) {
	v := NewVerdict("empty", nil)
	if v.Passed() {
		t.Error("an empty verdict passed")
	}
	_ = v.Do("one", func() (string, error) { return "", nil })
	if !v.Passed() || v.Err() != nil {
		t.Errorf("Passed=%v Err=%v after one passing step", v.Passed(), v.Err())
	}
}

func TestVerdictSkipNamesTheReasonAndDoesNotFail(t *testing.T) {
	var out bytes.Buffer
	v := NewVerdict("skip", &out)
	_ = v.Do("one", func() (string, error) { return "", nil })
	v.Skip("View the VM using VNC", "the guest has no VNC display")
	if !v.Passed() {
		t.Error("a skipped step failed the verdict")
	}
	if !strings.Contains(out.String(), "SKIP") || !strings.Contains(out.String(), "(the guest has no VNC display)") {
		t.Errorf("skip line lacks its reason:\n%s", out.String())
	}
}
