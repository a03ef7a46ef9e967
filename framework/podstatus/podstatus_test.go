package podstatus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pxe-conformance/pxe-conformance/framework/multus"
)

func pod(phase corev1.PodPhase, state corev1.ContainerState, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pxe-server", Namespace: "pxec-a", UID: "u1", Annotations: annotations},
		Status:     corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: "pxe-server", State: state}}},
	}
}

var (
	creating = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	running  = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	asks     = map[string]string{multus.NetworksAnnotation: `[{"name":"pxe-server-net","interface":"net1"}]`}
)

// TestNetworkBlockedNamesMultusWhenAStartedPodLacksItsAttachment: with Multus stopped, a pod
// comes up on the node's default network alone; the wait must say so, naming Multus and its
// DaemonSet's state, instead of letting the server fail on a missing interface.
func TestNetworkBlockedNamesMultusWhenAStartedPodLacksItsAttachment(t *testing.T) {
	kube := fake.NewSimpleClientset(&appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "pxec-multus", Namespace: "kube-system"},
		Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: 0, NumberReady: 0}})
	got := NetworkBlocked(context.Background(), kube, pod(corev1.PodRunning, running, asks))
	want := "it runs without its network attachment pxec-a/pxe-server-net (interface net1): Multus did not set up the pod's networks; " +
		"Multus DaemonSet kube-system/pxec-multus 0 of 0 pods ready"
	if got != want {
		t.Errorf("NetworkBlocked =\n %q, want\n %q", got, want)
	}

	made := map[string]string{multus.NetworksAnnotation: asks[multus.NetworksAnnotation],
		multus.NetworkStatusAnnotation: `[{"name":"pxec-a/pxe-server-net","interface":"net1"}]`}
	if got := NetworkBlocked(context.Background(), kube, pod(corev1.PodRunning, running, made)); got != "" {
		t.Errorf("a pod with its attachment: %q, want nothing", got)
	}
	if got := NetworkBlocked(context.Background(), kube, pod(corev1.PodPending, creating, asks)); got != "" {
		t.Errorf("a pod whose sandbox is being set up: %q, want nothing yet", got)
	}
}

// TestNetworkBlockedQuotesThePodsSandboxEventUnlessTheAPIServerWasSlow: a plugin that failed is
// a verdict at once (the kubelet's retry comes minutes later), quoting this pod's latest event;
// a plugin's API request that timed out is not (the full run met Multus timing out once on a
// slow API server, and the retry cured it).
func TestNetworkBlockedQuotesThePodsSandboxEventUnlessTheAPIServerWasSlow(t *testing.T) {
	at := func(s int) metav1.Time { return metav1.NewTime(time.Date(2026, 12, 7, 6, 0, s, 0, time.UTC)) }
	failure := func(name string, uid types.UID, s int, msg string) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "pxec-a"}, Reason: "FailedCreatePodSandBox", Message: msg,
			LastTimestamp: at(s), Count: 1, InvolvedObject: corev1.ObjectReference{Name: "pxe-server", UID: uid}}
	}
	const slow = `plugin type="multus" name="multus-cni-network" failed (add): Multus: [pxec-a/pxe-server/u1]: error waiting for pod: ` +
		`Get "https://10.96.0.1:443/api/v1/namespaces/pxec-a/pods/pxe-server?timeout=1m0s": context deadline exceeded`
	const missing = `plugin type="multus" failed (add): failed to find plugin "bridge" in path [/opt/cni/bin]`
	kube := fake.NewSimpleClientset(failure("old", "u0", 1, "an earlier pod of that name"), failure("slow", "u1", 10, slow))
	if got := NetworkBlocked(context.Background(), kube, pod(corev1.PodPending, creating, asks)); got != "" {
		t.Errorf("after an API request timed out: %q, want no verdict", got)
	}
	for i, name := range []string{"first", "second"} {
		e := failure(name, "u1", 20+i, fmt.Sprintf("sandbox %d: %s", i+1, missing))
		if _, err := kube.CoreV1().Events("pxec-a").Create(context.Background(), e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, want := NetworkBlocked(context.Background(), kube, pod(corev1.PodPending, creating, asks)), "its network could not be set up: "+e.Message; got != want {
			t.Errorf("after failure %d: %q, want %q", i+1, got, want)
		}
	}
}

func TestTerminatedSaysWhyAContainerStoppedOrCannotStart(t *testing.T) {
	for _, tc := range []struct {
		p    *corev1.Pod
		want string
	}{
		{pod(corev1.PodFailed, running, nil), "phase Failed"},
		// Run 3 said "phase Failed: " of a server that had exited 3: the container says more.
		{pod(corev1.PodFailed, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}, nil), "container pxe-server exited 3 (Error)"},
		{pod(corev1.PodRunning, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}, nil), "container pxe-server exited 3 (Error)"},
		{pod(corev1.PodPending, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "back-off"}}, nil), "ImagePullBackOff: back-off"},
		{pod(corev1.PodPending, creating, nil), ""},
	} {
		if got := Terminated(tc.p); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Terminated = %q, want %q", got, tc.want)
		}
	}
}
