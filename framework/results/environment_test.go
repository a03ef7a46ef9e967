package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	kvv1 "kubevirt.io/api/core/v1"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"
)

// fakeNodes answers node probes from a table, and records which nodes were probed.
type fakeNodes struct {
	mu     sync.Mutex
	out    map[string]string
	err    map[string]error
	probed []string
}

func (f *fakeNodes) NodeExec(_ context.Context, node string, argv ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probed = append(f.probed, node)
	if argv[0] != "sh" || !strings.Contains(argv[len(argv)-1], "/sys/class/net/*/bridge") {
		return nil, fmt.Errorf("unexpected probe %q", argv)
	}
	return []byte(f.out[node]), f.err[node]
}

// fakeKubeVirts lists KubeVirt resources from a table, or fails with err; any other call
// panics (the embedded interface is nil), since reading the environment must change nothing.
type fakeKubeVirts struct {
	kvcorev1.KubeVirtInterface
	items []kvv1.KubeVirt
	err   error
}

func (f fakeKubeVirts) KubeVirts(string) kvcorev1.KubeVirtInterface { return f }

func (f fakeKubeVirts) List(context.Context, metav1.ListOptions) (*kvv1.KubeVirtList, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &kvv1.KubeVirtList{Items: f.items}, nil
}

func node(name string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		NodeInfo: corev1.NodeSystemInfo{OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.1.0-40-amd64",
			ContainerRuntimeVersion: "containerd://2.1.4", KubeletVersion: "v1.34.3", Architecture: "amd64"}}}
}

func kubeVirtCR() kvv1.KubeVirt {
	return kvv1.KubeVirt{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kubevirt", Name: "kubevirt"},
		Spec: kvv1.KubeVirtSpec{Configuration: kvv1.KubeVirtConfiguration{DeveloperConfiguration: &kvv1.DeveloperConfiguration{
			UseEmulation: true, FeatureGates: []string{"ExpandDisks", "Snapshot"}}}},
		Status: kvv1.KubeVirtStatus{Phase: kvv1.KubeVirtPhaseDeployed, ObservedKubeVirtVersion: "v1.9.0",
			Conditions: []kvv1.KubeVirtCondition{{Type: "Available", Status: corev1.ConditionTrue}}},
	}
}

func multusDaemonSet() *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-multus-ds"},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, NumberReady: 2}}
	ds.Spec.Template.Spec.Containers = []corev1.Container{{Name: "kube-multus", Image: "pxec.local/multus:v4.2.2"}}
	return ds
}

func withServerVersion(kube *kubefake.Clientset, v string) *kubefake.Clientset {
	kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: v}
	return kube
}

func TestCollectEnvironmentReadsTheCluster(t *testing.T) {
	kube := withServerVersion(kubefake.NewClientset(
		node("worker", corev1.ConditionTrue), node("control-plane", corev1.ConditionTrue), node("down", corev1.ConditionFalse),
		multusDaemonSet(),
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kindnet"}},
	), "v1.34.3")
	nodes := &fakeNodes{out: map[string]string{
		"control-plane": "bridge=br1\nbridge=br2\ncni=bridge host-local multus static\n",
		"worker":        "bridge=br1\ncni-unseen\n",
	}}
	env, err := CollectEnvironment(context.Background(), Cluster{Kube: kube, KubeVirt: fakeKubeVirts{items: []kvv1.KubeVirt{kubeVirtCR()}}, Node: nodes}, testConfig())
	if err != nil {
		t.Fatalf("CollectEnvironment: %v", err)
	}
	c := env.Cluster
	if !c.Reached || c.Error != "" || c.KubernetesVersion != "v1.34.3" {
		t.Errorf("cluster reached=%v error=%q version=%q, want reached, v1.34.3", c.Reached, c.Error, c.KubernetesVersion)
	}
	if len(c.Nodes) != 3 {
		t.Fatalf("nodes %+v, want 3", c.Nodes)
	}
	cp, down, worker := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if cp.Name != "control-plane" || cp.OSImage != "Debian GNU/Linux 12 (bookworm)" || cp.KernelVersion != "6.1.0-40-amd64" ||
		cp.ContainerRuntime != "containerd://2.1.4" || !cp.Ready {
		t.Errorf("node %+v: want control-plane as the API describes it", cp)
	}
	if !slices.Equal(cp.Bridges, []string{"br1", "br2"}) || !slices.Equal(cp.CNIPlugins, []string{"bridge", "host-local", "multus", "static"}) || cp.CNIPluginsError != "" {
		t.Errorf("control-plane bridges %q plugins %q (%s), want br1 br2 and four plugins", cp.Bridges, cp.CNIPlugins, cp.CNIPluginsError)
	}
	if !slices.Equal(worker.Bridges, []string{"br1"}) || worker.CNIPlugins != nil || !strings.Contains(worker.CNIPluginsError, "not visible to the node probe") {
		t.Errorf("worker bridges %q plugins %q (%q), want br1 and why the plugins were not seen", worker.Bridges, worker.CNIPlugins, worker.CNIPluginsError)
	}
	if down.Ready || !strings.Contains(down.BridgesError, "not Ready") || slices.Contains(nodes.probed, "down") {
		t.Errorf("node down: %+v, probed %q: want it left unprobed, saying why", down, nodes.probed)
	}
	want := KubeVirtInfo{Namespace: "kubevirt", Name: "kubevirt", Version: "v1.9.0", Phase: "Deployed", Available: true,
		UseEmulation: true, FeatureGates: []string{"ExpandDisks", "Snapshot"}}
	if len(c.KubeVirt) != 1 || fmt.Sprint(c.KubeVirt[0]) != fmt.Sprint(want) {
		t.Errorf("KubeVirt %+v, want %+v", c.KubeVirt, want)
	}
	if m := c.Multus; m == nil || !m.Running || len(m.DaemonSets) != 1 || m.DaemonSets[0].Name != "kube-multus-ds" || m.DaemonSets[0].Images[0] != "pxec.local/multus:v4.2.2" {
		t.Errorf("Multus %+v, want kube-multus-ds running", m)
	}
	if env.Config.MAC != testConfig().MAC || env.Suite.Commit == "" {
		t.Errorf("config %+v suite %+v: want the run's config and the suite's build", env.Config, env.Suite)
	}
}

func TestCollectEnvironmentRecordsWhatItCannotRead(t *testing.T) {
	kube := withServerVersion(kubefake.NewClientset(node("worker", corev1.ConditionTrue)), "v1.34.3")
	kube.PrependReactor("list", "daemonsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`daemonsets.apps is forbidden: User "vendor" cannot list resource "daemonsets"`)
	})
	nodes := &fakeNodes{err: map[string]error{"worker": errors.New("exec on node worker: pod did not finish (ErrImagePull)")}}
	env, err := CollectEnvironment(context.Background(), Cluster{Kube: kube, KubeVirt: fakeKubeVirts{}, Node: nodes}, testConfig())
	if err == nil {
		t.Error("CollectEnvironment returned no error, want the unreadable items joined")
	}
	c := env.Cluster
	if !c.Reached || c.KubernetesVersion != "v1.34.3" || len(c.Nodes) != 1 {
		t.Errorf("cluster %+v: want it reached, with its version and node", c)
	}
	if !strings.Contains(c.MultusError, "cannot list resource") || c.Multus != nil {
		t.Errorf("Multus %+v error %q, want the API's refusal in its place", c.Multus, c.MultusError)
	}
	if c.KubeVirtError != "no KubeVirt resource in the cluster" {
		t.Errorf("KubeVirt error %q, want that there is none", c.KubeVirtError)
	}
	if w := c.Nodes[0]; !strings.Contains(w.BridgesError, "ErrImagePull") || !strings.Contains(w.CNIPluginsError, "ErrImagePull") {
		t.Errorf("worker %+v: want the probe's failure in place of bridges and plugins", w)
	}
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"multusError"`, `"kubevirtError"`, `"bridgesError"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("environment.json lacks %s: %s", key, b)
		}
	}
}

func TestCollectEnvironmentSaysWhyNoClusterAnswered(t *testing.T) {
	kube := kubefake.NewClientset()
	refuse := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("dial tcp 192.0.2.1:6443: connect: connection refused")
	}
	kube.PrependReactor("*", "*", refuse)
	_, _, refused := refuse(nil)
	kv := fakeKubeVirts{err: refused}
	env, err := CollectEnvironment(context.Background(), Cluster{Kube: kube, KubeVirt: kv}, testConfig())
	if err == nil {
		t.Error("CollectEnvironment returned no error for a cluster that never answered")
	}
	if env.Cluster.Reached || !strings.Contains(env.Cluster.Error, "connection refused") {
		t.Errorf("cluster %+v, want it unreached, saying why", env.Cluster)
	}
}
