package nodeexec

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

func TestNewPodRunnerRefusesBadValues(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	cases := []struct {
		name, namespace, image string
		opts                   []PodRunnerOption
		want                   string
	}{
		{"namespace", "Not_A_Namespace", "busybox", nil, `namespace "Not_A_Namespace"`},
		{"image", "pxec", "", nil, `image "": must not be empty`},
		{"capability", "pxec", "busybox", []PodRunnerOption{WithCapabilities("CAP_NET_ADMIN")}, `capabilities "CAP_NET_ADMIN"`},
		{"timeout", "pxec", "busybox", []PodRunnerOption{WithPodTimeout(0)}, "pod timeout"},
	}
	for _, tc := range cases {
		_, err := NewPodRunner(cfg, tc.namespace, tc.image, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestNodeExecReportsAFailedCommandWithItsLineAndOutput runs a command whose pod ends with
// exit status 2 on a fake API server.
func TestNodeExecReportsAFailedCommandWithItsLineAndOutput(t *testing.T) {
	kube, pod := fakePodAPI(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2}})
	r := &PodRunner{kube: kube, namespace: "pxec", image: "busybox", timeout: time.Minute,
		caps: []corev1.Capability{"NET_ADMIN"}}
	_, err := r.NodeExec(context.Background(), "kind-worker", "sh", "-c", "ip link add x type bridge")
	var ce *command.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *command.Error", err)
	}
	for _, want := range []string{"exec on node kind-worker", "sh -c 'ip link add x type bridge'", "exit status 2", "fake logs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if (*pod).Spec.NodeName != "kind-worker" || !(*pod).Spec.HostNetwork || (*pod).Labels[apply.ManagedByLabel] != apply.ManagedByValue {
		t.Errorf("pod: node %q, hostNetwork %v, labels %v", (*pod).Spec.NodeName, (*pod).Spec.HostNetwork, (*pod).Labels)
	}
	if caps := (*pod).Spec.Containers[0].SecurityContext.Capabilities.Add; len(caps) != 1 || caps[0] != "NET_ADMIN" {
		t.Errorf("capabilities %v", caps)
	}
}

func TestWithHostPathReadOnlyMountsTheDirectoryReadOnly(t *testing.T) {
	if _, err := NewPodRunner(&rest.Config{Host: "https://127.0.0.1:1"}, "pxec", "busybox", WithHostPathReadOnly("opt/cni/bin")); err == nil ||
		!strings.Contains(err.Error(), `host path "opt/cni/bin"`) {
		t.Errorf("relative host path: error %v, want it refused naming the path", err)
	}
	kube, pod := fakePodAPI(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}})
	r := &PodRunner{kube: kube, namespace: "pxec", image: "busybox", timeout: time.Minute}
	if err := WithHostPathReadOnly("/opt/cni/bin").applyPodRunner(r); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NodeExec(context.Background(), "kind-worker", "ls", "/opt/cni/bin"); err != nil {
		t.Fatalf("NodeExec: %v", err)
	}
	vols, mounts := (*pod).Spec.Volumes, (*pod).Spec.Containers[0].VolumeMounts
	if len(vols) != 1 || vols[0].HostPath == nil || vols[0].HostPath.Path != "/opt/cni/bin" || *vols[0].HostPath.Type != corev1.HostPathDirectory {
		t.Fatalf("volumes %+v, want the host's /opt/cni/bin, which must exist", vols)
	}
	if len(mounts) != 1 || mounts[0].MountPath != "/opt/cni/bin" || !mounts[0].ReadOnly || mounts[0].Name != vols[0].Name {
		t.Errorf("mounts %+v, want /opt/cni/bin read-only", mounts)
	}
}

// TestNodeExecReportsAnImageItCannotPull: a pod in ImagePullBackOff ends the command at once
// with an *ImagePullError naming the image and the node.
func TestNodeExecReportsAnImageItCannotPull(t *testing.T) {
	kube, _ := fakePodAPI(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ImagePullBackOff", Message: `Back-off pulling image "vendor.example/pxe-server:dev"`}})
	r := &PodRunner{kube: kube, namespace: "pxec", image: "vendor.example/pxe-server:dev", timeout: time.Hour}
	_, err := r.NodeExec(context.Background(), "worker-2", "true")
	var pe *ImagePullError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not an *ImagePullError", err)
	}
	if pe.Image != "vendor.example/pxe-server:dev" || pe.Node != "worker-2" || pe.Reason != "ImagePullBackOff" {
		t.Errorf("ImagePullError %+v, want the image, node worker-2 and ImagePullBackOff", pe)
	}
}

// fakePodAPI is a fake API server whose pods, once created, report the container state
// state; created points at the last pod created.
func fakePodAPI(state corev1.ContainerState) (kube *kubefake.Clientset, created **corev1.Pod) {
	kube = kubefake.NewSimpleClientset()
	var pod *corev1.Pod
	kube.PrependReactor("create", "pods", func(act k8stesting.Action) (bool, runtime.Object, error) {
		pod = act.(k8stesting.CreateAction).GetObject().(*corev1.Pod).DeepCopy()
		return false, nil, nil
	})
	kube.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		p := pod.DeepCopy()
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "exec", State: state}}
		return true, p, nil
	})
	return kube, &pod
}

func TestWithNodeMountNamespaceRunsTheNodesOwnProgram(t *testing.T) {
	kube, pod := fakePodAPI(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}})
	r := &PodRunner{kube: kube, namespace: "pxec", image: "busybox", timeout: time.Minute}
	if err := WithNodeMountNamespace().applyPodRunner(r); err != nil {
		t.Fatal(err)
	}
	if _, err := r.NodeExec(context.Background(), "kind-worker", "iptables", "-w", "-S", "FORWARD"); err != nil {
		t.Fatalf("NodeExec: %v", err)
	}
	p := *pod
	if got := strings.Join(p.Spec.Containers[0].Command, " "); got != "nsenter --target 1 --mount -- iptables -w -S FORWARD" {
		t.Errorf("command %q, want the node's iptables through nsenter", got)
	}
	sc := p.Spec.Containers[0].SecurityContext
	if !p.Spec.HostPID || !p.Spec.HostNetwork || sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("hostPID %v, hostNetwork %v, security context %+v; want the node's PID and network namespaces, privileged", p.Spec.HostPID, p.Spec.HostNetwork, sc)
	}
}
