package kubevirt

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	kvv1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/multus"
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

// TestLauncherBlockedNamesMultusForALauncherWithoutItsAttachment: with Multus stopped, KubeVirt
// keeps the VMI Scheduled, retrying "pod link is missing"; the wait fails at once instead,
// naming Multus.
func TestLauncherBlockedNamesMultusForALauncherWithoutItsAttachment(t *testing.T) {
	v := &kvv1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "pxe-guest", Namespace: "pxec-a", UID: "vmi-1"}}
	launcher := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "virt-launcher-pxe-guest-x", Namespace: "pxec-a", Labels: map[string]string{kvv1.CreatedByLabel: "vmi-1"},
			Annotations: map[string]string{multus.NetworksAnnotation: `[{"name":"pxe-net","namespace":"pxec-a","interface":"pod5bbed4e46dd"}]`}},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "compute", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
	}
	other := launcher.DeepCopy()
	other.Name, other.Labels = "virt-launcher-someone-else", map[string]string{kvv1.CreatedByLabel: "vmi-2"}
	kube := fake.NewSimpleClientset(launcher, other)
	err := launcherBlocked(context.Background(), kube, v)
	if err == nil || !strings.Contains(err.Error(), `VMI pxec-a/pxe-guest cannot start: its virt-launcher pod virt-launcher-pxe-guest-x on node "n1": it runs without its network attachment pxec-a/pxe-net`) ||
		!strings.Contains(err.Error(), "Multus") {
		t.Errorf("launcherBlocked = %v, want the launcher's missing attachment, naming Multus", err)
	}
	launcher.Annotations[multus.NetworkStatusAnnotation] = `[{"name":"pxec-a/pxe-net","interface":"pod5bbed4e46dd"}]`
	kube = fake.NewSimpleClientset(launcher)
	if err := launcherBlocked(context.Background(), kube, v); err != nil {
		t.Errorf("a launcher with its attachment: %v", err)
	}
}
