package kvm

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestHasHardwareVirtReadsCPUFlags(t *testing.T) {
	cases := []struct {
		name, cpuinfo string
		want          bool
	}{
		{"intel", "processor\t: 0\nflags\t\t: fpu vme de pse vmx ssse3\n", true},
		{"amd", "processor\t: 0\nflags\t\t: fpu svm lm\n", true},
		{"none", "processor\t: 0\nflags\t\t: fpu vme hypervisor\n", false},
		{"vmx only in another field", "model name\t: vmx-capable\nflags\t\t: fpu\n", false},
		{"vmx flags line (not flags)", "vmx flags\t: ept vpid\nflags\t\t: fpu\n", false},
		{"empty", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasHardwareVirt(tc.cpuinfo); got != tc.want {
				t.Errorf("hasHardwareVirt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKVMVerdictNamesWhatIsMissing(t *testing.T) {
	cases := []struct {
		name  string
		facts facts
		ok    bool
		why   string
	}{
		{"no device", facts{deviceErr: &fs.PathError{Op: "stat", Path: "/dev/kvm", Err: fs.ErrNotExist}, hwVirt: true, vendorModule: "kvm_intel"}, false, "/dev/kvm unavailable"},
		{"no cpu support", facts{hwVirt: false, vendorModule: "kvm_intel"}, false, "neither vmx nor svm"},
		{"no vendor module", facts{hwVirt: true}, false, "neither kvm_intel nor kvm_amd"},
		{"all there", facts{hwVirt: true, vendorModule: "kvm_amd"}, true, "kvm_amd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := tc.facts.verdict()
			if ok != tc.ok || !strings.Contains(why, tc.why) {
				t.Errorf("verdict = %v %q, want %v and %q", ok, why, tc.ok, tc.why)
			}
		})
	}
	if !errors.Is(cases[0].facts.deviceErr, fs.ErrNotExist) {
		t.Fatal("test fixture lost its cause")
	}
}

func TestProbeHonoursTheOverride(t *testing.T) {
	for _, tc := range []struct {
		value  string
		usable bool
	}{{"kvm", true}, {"tcg", false}} {
		t.Setenv(OverrideEnv, tc.value)
		v, err := Probe(context.Background())
		if err != nil || v.Usable != tc.usable || !strings.Contains(v.Reason, OverrideEnv) {
			t.Errorf("%s=%s: Probe = %+v, %v", OverrideEnv, tc.value, v, err)
		}
	}
	t.Setenv(OverrideEnv, "hvf")
	if _, err := Probe(context.Background()); err == nil || !strings.Contains(err.Error(), `"hvf"`) {
		t.Errorf("Probe accepted a bad override: %v", err)
	}
}

// TestProbeAgreesWithTheHostFacts runs the real probe: it may say yes only where the host's
// facts allow KVM, and its reason must name the device.
func TestProbeAgreesWithTheHostFacts(t *testing.T) {
	t.Setenv(OverrideEnv, "")
	v, err := Probe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("probe: %+v", v)
	if ok, why := readFacts().verdict(); !ok && v.Usable {
		t.Errorf("Probe said KVM is usable although %s", why)
	}
	if !strings.Contains(v.Reason, Device) {
		t.Errorf("reason %q does not name %s", v.Reason, Device)
	}
}
