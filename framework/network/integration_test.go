//go:build cluster

// This test needs a Docker engine and the offline node image: run it with `make test-cluster`
// (after `make images`), not with `make test`.

package network

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
)

// The cluster package's Cluster runs node commands the way EnsureBridge needs.
var _ nodeexec.Runner = (*cluster.Cluster)(nil)

// pxeServerImage is what ci/imagebuilder/network builds from fixtures/pxe-server.
const pxeServerImage = "pxec.local/pxe-server:dev"

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

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestMultusAttachesPodsToTheNodeBridge brings up a kind cluster from the offline node image,
// installs the CNI plugins and Multus from our images, creates br1 on the node, and shows
// that a pod with a no-IPAM bridge attachment gets a second interface on br1, that the PXE
// server runs on the bridge with static IPAM and a payload streamed into its pod, and that a
// client on the bridge gets its reserved address from it over DHCP. Then it undoes all of it
// and checks the node is as before.
func TestMultusAttachesPodsToTheNodeBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a kind cluster; skipped with -short")
	}
	node := os.Getenv("PXEC_NODE_IMAGE")
	if node == "" {
		node = cluster.DefaultNodeImage
	}
	images := []string{multus.DefaultMultusImage, multus.DefaultCNIPluginsImage, pxeServerImage}
	skipUnless(t, exec.Command("docker", "info").Run() == nil, "the Docker engine does not answer (ci/engine-up.sh starts it)")
	for _, img := range append([]string{node}, images...) {
		skipUnless(t, exec.Command("docker", "image", "inspect", img).Run() == nil,
			"image "+img+" is missing (go run ./ci/imagebuilder)")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	tw := testWriter{t}
	step := func(name string, start time.Time) {
		t.Logf("timing: %s took %s", name, time.Since(start).Round(10*time.Millisecond))
	}

	var b [3]byte
	_, _ = rand.Read(b[:])
	start := time.Now()
	c, err := cluster.CreateKind(ctx, "pxec-net-"+hex.EncodeToString(b[:]), cluster.WithNodeImage(node), cluster.WithLog(tw))
	if c != nil {
		t.Cleanup(func() {
			if err := c.Delete(context.Background()); err != nil {
				t.Errorf("delete cluster: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	step("create kind cluster", start)
	nodeName := c.Nodes[0]
	start = time.Now()
	if err := c.LoadImages(ctx, images...); err != nil {
		t.Fatal(err)
	}
	step("load images", start)

	confBefore := nodeFiles(ctx, t, c, nodeName, "/etc/cni/net.d")
	binBefore := nodeFiles(ctx, t, c, nodeName, "/opt/cni/bin")

	start = time.Now()
	plugins, err := multus.InstallCNIPlugins(ctx, c.REST, multus.WithLog(tw))
	if plugins != nil {
		t.Cleanup(func() { _ = plugins.Uninstall(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	step("InstallCNIPlugins", start)
	start = time.Now()
	mts, err := multus.InstallMultus(ctx, c.REST, multus.WithLog(tw))
	if mts != nil {
		t.Cleanup(func() { _ = mts.Uninstall(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	if mts.Found != "" {
		t.Fatalf("a fresh kind cluster already runs Multus: %s", mts.Found)
	}
	step("InstallMultus", start)
	t.Logf("node %s CNI configs with Multus: %v", nodeName, nodeFiles(ctx, t, c, nodeName, "/etc/cni/net.d"))

	start = time.Now()
	br, err := EnsureBridge(ctx, c, nodeName, DefaultBridge)
	if br != nil {
		t.Cleanup(func() { _ = br.Delete(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	step("EnsureBridge", start)
	for _, f := range br.Findings {
		t.Logf("finding: %s", f)
	}
	if ok, reason, err := VLANSupported(ctx, c, nodeName); err != nil {
		t.Errorf("VLANSupported: %v", err)
	} else {
		t.Logf("VLAN support on %s: %v %s", nodeName, ok, reason)
	}

	kube := kubernetes.NewForConfigOrDie(c.REST)
	nads := nadclient.NewForConfigOrDie(c.REST)
	ns := "pxec-net-test"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer deleteNamespace(t, kube, ns)

	// The read-only preflight, as a vendor cluster runs it: through a pod, not the node.
	start = time.Now()
	pr, err := nodeexec.NewPodRunner(c.REST, ns, pxeServerImage)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := BridgeExists(ctx, pr, nodeName, DefaultBridge); !ok || err != nil {
		t.Errorf("BridgeExists through a pod = %v, %v", ok, err)
	}
	if ok, err := BridgeExists(ctx, pr, nodeName, "pxecnosuch"); ok || err != nil {
		t.Errorf("BridgeExists through a pod for an absent bridge = %v, %v", ok, err)
	}
	viaPod, err := CheckBridgeNetfilter(ctx, pr, nodeName, DefaultBridge)
	if err != nil {
		t.Errorf("CheckBridgeNetfilter through a pod: %v", err)
	}
	t.Logf("finding through a pod: %s", viaPod)
	step("preflight through a pod (3 checks)", start)

	vmNet, err := BridgeNAD("pxe-net-conf", ns, DefaultBridge)
	if err != nil {
		t.Fatal(err)
	}
	serverNet, err := BridgeNAD("pxe-server-net", ns, DefaultBridge, WithStaticIP("192.168.100.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{vmNet.Spec.Config, serverNet.Spec.Config} {
		t.Logf("NAD config: %s", n)
	}
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Create(ctx, vmNet, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Create(ctx, serverNet, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The PXE server: its payload arrives through the init container, streamed in with exec.
	start = time.Now()
	server := pxeServerPod(ns)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, server, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(ctx, t, kube, ns, server.Name, func(p *corev1.Pod) bool {
		for _, s := range p.Status.InitContainerStatuses {
			if s.Name == "payload" && s.State.Running != nil {
				return true
			}
		}
		return false
	})
	payload := payloadTar(t, map[string]int{"vmlinuz": 8 << 20, "initrd.img": 3 << 20})
	upload := time.Now()
	if out, err := podExec(ctx, c.REST, kube, ns, server.Name, "payload", bytes.NewReader(payload),
		"sh", "-c", "tar -x -C /srv/pxe && touch /srv/pxe/.complete && ls -l /srv/pxe"); err != nil {
		t.Fatalf("stream payload: %v\n%s", err, out)
	} else {
		t.Logf("payload in the pod after %s:\n%s", time.Since(upload).Round(time.Millisecond), out)
	}
	waitPod(ctx, t, kube, ns, server.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	step("PXE server pod running (incl. 11 MiB payload upload)", start)
	out, err := podExec(ctx, c.REST, kube, ns, server.Name, "pxe-server", nil, "ip", "-o", "addr", "show", "dev", "net1")
	if err != nil || !strings.Contains(out, "inet 192.168.100.1/24") {
		t.Errorf("PXE server's net1: %v\n%s", err, out)
	}
	t.Logf("PXE server pod net1:\n%s", out)

	// A client on the bridge, with no IPAM: a second interface and no address, like the VM's.
	start = time.Now()
	probe := probePod(ns)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(ctx, t, kube, ns, probe.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	step("bridge client pod running", start)
	out, err = podExec(ctx, c.REST, kube, ns, probe.Name, "probe", nil, "ip", "-o", "addr", "show", "dev", "net1")
	if err != nil {
		t.Fatalf("probe's net1: %v\n%s", err, out)
	}
	t.Logf("probe pod net1 before DHCP:\n%s", out)
	if strings.Contains(out, " inet ") {
		t.Errorf("a no-IPAM attachment got an IPv4 address:\n%s", out)
	}
	st, err := InspectBridge(ctx, c, nodeName, DefaultBridge)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bridge %s on %s: %+v", DefaultBridge, nodeName, st)
	if len(st.Ports) != 2 {
		t.Errorf("bridge ports %v, want the PXE server's and the probe's veth", st.Ports)
	}
	links, _ := c.NodeExec(ctx, nodeName, "bridge", "link", "show")
	t.Logf("node %s `bridge link show`:\n%s", nodeName, links)

	// DHCP across the bridge: the probe takes the reserved MAC and asks the PXE server.
	out, err = podExec(ctx, c.REST, kube, ns, probe.Name, "probe", nil, "sh", "-c",
		"ip link set net1 down && ip link set net1 address de:00:00:00:00:de && ip link set net1 up && "+
			"udhcpc -i net1 -n -q -f -t 5 -T 2 -s /bin/true 2>&1")
	if err != nil || !strings.Contains(out, "192.168.100.10") {
		t.Errorf("DHCP from the PXE server over br1: %v\n%s", err, out)
	}
	t.Logf("udhcpc in the probe pod:\n%s", out)
	events, err := podExec(ctx, c.REST, kube, ns, server.Name, "pxe-server", nil, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/events")
	if err != nil || !strings.Contains(events, "de:00:00:00:00:de") {
		t.Errorf("PXE server events: %v\n%s", err, events)
	}
	t.Logf("PXE server events:\n%s", events)

	// Undo everything, in reverse, and check the node is as it was.
	deleteNamespace(t, kube, ns)
	start = time.Now()
	if err := mts.Uninstall(ctx); err != nil {
		t.Errorf("uninstall multus: %v", err)
	}
	step("Multus Uninstall", start)
	if err := plugins.Uninstall(ctx); err != nil {
		t.Errorf("uninstall plugins: %v", err)
	}
	if err := br.Delete(ctx); err != nil {
		t.Errorf("delete bridge: %v", err)
	}
	if ok, err := BridgeExists(ctx, c, nodeName, DefaultBridge); ok || err != nil {
		t.Errorf("bridge after Delete: exists=%v err=%v", ok, err)
	}
	if got := nodeFiles(ctx, t, c, nodeName, "/etc/cni/net.d"); got != confBefore {
		t.Errorf("CNI configs after uninstall %q, before %q", got, confBefore)
	}
	if got := nodeFiles(ctx, t, c, nodeName, "/opt/cni/bin"); got != binBefore {
		t.Errorf("CNI plugins after uninstall %q, before %q", got, binBefore)
	}
}

// nodeFiles lists a node directory, recursively, for before/after comparisons.
func nodeFiles(ctx context.Context, t *testing.T, c *cluster.Cluster, node, dir string) string {
	t.Helper()
	out, err := c.NodeExec(ctx, node, "find", dir, "-mindepth", "1")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

func deleteNamespace(t *testing.T, kube kubernetes.Interface, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	if err != nil {
		t.Errorf("delete namespace %s: %v", ns, err)
		return
	}
	_ = wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

func pxeServerPod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pxe-server", Namespace: ns,
			Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": "pxe-server-net"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptrTo(int64(2)),
			Volumes:                       []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			InitContainers: []corev1.Container{{
				Name: "payload", Image: pxeServerImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command:      []string{"sh", "-c", "until [ -e /srv/pxe/.complete ]; do sleep 0.2; done; rm /srv/pxe/.complete"},
				VolumeMounts: []corev1.VolumeMount{{Name: "root", MountPath: "/srv/pxe"}},
			}},
			Containers: []corev1.Container{{
				Name: "pxe-server", Image: pxeServerImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"--interface=net1", "--server-ip=192.168.100.1", "--subnet=192.168.100.0/24", "--root=/srv/pxe",
					"--reservation", "mac=de:00:00:00:00:de,ip=192.168.100.10,hostname=pxec-guest"},
				VolumeMounts: []corev1.VolumeMount{{Name: "root", MountPath: "/srv/pxe"}},
			}},
		},
	}
}

func probePod(ns string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bridge-probe", Namespace: ns,
			Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": "pxe-net-conf"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptrTo(int64(1)),
			Containers: []corev1.Container{{
				Name: "probe", Image: pxeServerImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
				SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
					Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}}},
			}},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }

// payloadTar makes a tar of files of the given sizes with random content, standing in for
// the kernel and initramfs that framework/bootimage makes.
func payloadTar(t *testing.T, files map[string]int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, size := range files {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func waitPod(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns, name string, cond func(*corev1.Pod) bool) {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		if p.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("pod failed")
		}
		return cond(p), nil
	})
	if err != nil {
		evs, _ := kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		var sb strings.Builder
		for _, e := range evs.Items {
			fmt.Fprintf(&sb, "\n  %s %s: %s", e.Type, e.Reason, e.Message)
		}
		var status any
		if last != nil {
			status = last.Status
		}
		t.Fatalf("pod %s/%s: %v\nstatus: %+v\nevents:%s", ns, name, err, status, sb.String())
	}
}

// podExec runs argv in a container of a pod, with stdin when given, and returns its output.
func podExec(ctx context.Context, cfg *rest.Config, kube kubernetes.Interface, ns, pod, container string, stdin io.Reader, argv ...string) (string, error) {
	req := kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: argv, Stdin: stdin != nil, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: &out})
	if err != nil {
		return out.String(), fmt.Errorf("exec %v in %s/%s[%s]: %w", argv, ns, pod, container, err)
	}
	return out.String(), nil
}
