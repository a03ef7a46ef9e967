package kvm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// TestOnlyThisPackageProbesKVM keeps the probe the only place that looks at /dev/kvm: a caller
// that opened or checked the device itself would start guests under a KVM that hangs them, as
// the payload's QEMU test once did.
func TestOnlyThisPackageProbesKVM(t *testing.T) {
	root := moduleRoot(t)
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	var offenders []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			if path == self {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "//")
			if strings.Contains(code, `"`+Device+`"`) {
				rel, _ := filepath.Rel(root, path)
				offenders = append(offenders, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		t.Errorf("these lines look at %s themselves; ask kvm.Probe (or qemu.DetectAccel) instead:\n%s", Device, strings.Join(offenders, "\n"))
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}
