package cluster

import (
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
		facts kvmFacts
		ok    bool
		why   string
	}{
		{"no device", kvmFacts{deviceErr: &fs.PathError{Op: "stat", Path: "/dev/kvm", Err: fs.ErrNotExist}, hwVirt: true, vendorModule: "kvm_intel"}, false, "/dev/kvm unavailable"},
		{"no cpu support", kvmFacts{hwVirt: false, vendorModule: "kvm_intel"}, false, "neither vmx nor svm"},
		{"no vendor module", kvmFacts{hwVirt: true}, false, "neither kvm_intel nor kvm_amd"},
		{"all there", kvmFacts{hwVirt: true, vendorModule: "kvm_amd"}, true, "kvm_amd"},
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
