package kubevirt

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	kvv1 "kubevirt.io/api/core/v1"
)

func TestSyncFailureCountsOnlyAPersistingMessage(t *testing.T) {
	vmiWith := func(msg string) *kvv1.VirtualMachineInstance {
		v := &kvv1.VirtualMachineInstance{}
		if msg != "" {
			v.Status.Conditions = []kvv1.VirtualMachineInstanceCondition{{Type: kvv1.VirtualMachineInstanceSynchronized, Status: corev1.ConditionFalse, Message: msg}}
		}
		return v
	}
	var f syncFailure
	t0 := time.Now()
	if _, d := f.observe(vmiWith("EFI OVMF roms missing"), t0); d != 0 {
		t.Fatalf("first sight: %s", d)
	}
	if msg, d := f.observe(vmiWith("EFI OVMF roms missing"), t0.Add(50*time.Second)); d != 50*time.Second || msg != "EFI OVMF roms missing" {
		t.Fatalf("persisting: %q %s", msg, d)
	}
	if _, d := f.observe(vmiWith("another"), t0.Add(60*time.Second)); d != 0 {
		t.Fatalf("new message restarts the clock: %s", d)
	}
	if _, d := f.observe(vmiWith(""), t0.Add(70*time.Second)); d != 0 {
		t.Fatalf("cleared: %s", d)
	}
}
