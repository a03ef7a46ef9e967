//go:build cluster

// This test needs a Docker engine and the offline node image: run it with `make test-cluster`
// (after `make images`), not with `make test`.

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// skipUnless skips the test with reason, except under CI=true, where a missing prerequisite
// is a failure.
func skipUnless(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", reason)
	}
	t.Skip(reason)
}

// TestKindClusterRunsPrivilegedPodFromLoadedImage creates a one-node cluster from the offline
// node image, checks kube-system, finds it again with Existing (whose Delete must leave it
// alone), loads an image that only this test has, and runs a privileged pod from it that mounts
// a tmpfs (which needs CAP_SYS_ADMIN, the privilege being checked). Delete must then leave no
// node container and no temporary kubeconfig.
func TestKindClusterRunsPrivilegedPodFromLoadedImage(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a kind cluster; skipped with -short")
	}
	image := os.Getenv("PXEC_NODE_IMAGE")
	if image == "" {
		image = DefaultNodeImage
	}
	_, err := exec.LookPath("docker")
	skipUnless(t, err == nil, "docker is not installed")
	skipUnless(t, exec.Command("docker", "info").Run() == nil, "the Docker engine does not answer (ci/engine-up.sh starts it)")
	skipUnless(t, exec.Command("docker", "image", "inspect", image).Run() == nil,
		"node image "+image+" is missing (go run ./ci/imagebuilder node)")
	// The kube-proxy image has a shell and mount; retagged, it is an image no node holds yet.
	source := "registry.k8s.io/kube-proxy:v1.34.4"
	skipUnless(t, exec.Command("docker", "image", "inspect", source).Run() == nil, "image "+source+" is missing (go run ./ci/imagebuilder node)")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	suffix := randomSuffix(t)
	probe := "pxec.local/cluster-test-probe:" + suffix
	if out, err := exec.Command("docker", "tag", source, probe).CombinedOutput(); err != nil {
		t.Fatalf("docker tag %s %s: %v\n%s", source, probe, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", probe).Run() })

	c, err := CreateKind(ctx, "pxec-test-"+suffix, WithNodeImage(image), WithLog(testWriter{t}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Delete(context.Background()); err != nil {
			t.Errorf("delete: %v", err)
		}
		if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.x-k8s.kind.cluster="+c.Name).Output(); len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("containers of %s left after Delete: %s", c.Name, out)
		}
		if _, err := os.Stat(c.Kubeconfig); !os.IsNotExist(err) {
			t.Errorf("temporary kubeconfig %s left after Delete (stat: %v)", c.Kubeconfig, err)
		}
	})
	if len(c.Nodes) != 1 {
		t.Errorf("nodes %v, want one", c.Nodes)
	}

	client, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatal("no pods in kube-system")
	}
	for _, p := range pods.Items {
		if !podReady(p) {
			t.Errorf("kube-system pod %s is %s and not Ready", p.Name, p.Status.Phase)
		}
	}

	// The same cluster found through its kubeconfig: usable for node work, never deleted.
	found, err := Existing(ctx, c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if found.Name != c.Name || strings.Join(found.Nodes, ",") != strings.Join(c.Nodes, ",") {
		t.Errorf("Existing found %s %v, want %s %v", found.Name, found.Nodes, c.Name, c.Nodes)
	}
	if err := found.Delete(ctx); err != nil {
		t.Errorf("Delete of an Existing cluster: %v", err)
	}
	if _, err := found.NodeExec(ctx, c.Nodes[0], "true"); err != nil {
		t.Errorf("cluster unusable after Delete of its Existing handle: %v", err)
	}

	if err := c.LoadImages(ctx, probe); err != nil {
		t.Fatal(err)
	}
	out, err := c.NodeExec(ctx, c.Nodes[0], "crictl", "images", "-q", probe)
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("image %s not on node %s after LoadImages: %q %v", probe, c.Nodes[0], out, err)
	}
	if _, err := c.NodeExec(ctx, c.Nodes[0], "false"); err == nil || !strings.Contains(err.Error(), "false") {
		t.Errorf("NodeExec of a failing command gave %v, want an error naming the command", err)
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "privileged-probe", Namespace: metav1.NamespaceDefault},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:            "probe",
				Image:           probe,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"sh", "-c", "mount -t tmpfs probe /mnt && echo mounted-tmpfs && sleep 3600"},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}},
		},
	}
	if _, err := client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *corev1.Pod
	for ctx.Err() == nil {
		last, err = client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && (last.Status.Phase == corev1.PodRunning || last.Status.Phase == corev1.PodFailed || last.Status.Phase == corev1.PodSucceeded) {
			break
		}
		time.Sleep(time.Second)
	}
	if last == nil || last.Status.Phase != corev1.PodRunning {
		t.Fatalf("privileged pod did not reach Running: %+v", last)
	}
	var logs []byte
	for ctx.Err() == nil {
		logs, err = client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).Do(ctx).Raw()
		if err == nil && strings.Contains(string(logs), "mounted-tmpfs") {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("privileged pod did not mount a tmpfs; logs %q, last error %v", logs, err)
}

func randomSuffix(t *testing.T) string {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testWriter sends kind's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
