package preflight

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	kvv1 "kubevirt.io/api/core/v1"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// fakeNode is what a node's probes find there.
type fakeNode struct {
	bridges   []string
	cni       string // ls -1 /opt/cni/bin
	netfilter string // netfilterScript's output
	vlan      string // the VLAN probe's output
	noPull    bool   // the probe image cannot be pulled here
}

// fakeNodes answers every probe of the checks from a fakeNode per node, as a nodeexec.Runner,
// and records each probe as "<node> <what>".
type fakeNodes struct {
	mu     sync.Mutex
	nodes  map[string]*fakeNode
	probes []string
}

var bridgeScript = regexp.MustCompile(`^d=/sys/class/net/(\S+)\n`)

func (f *fakeNodes) NodeExec(_ context.Context, node string, argv ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[node]
	if n.noPull {
		f.probes = append(f.probes, node+" pull")
		return nil, fmt.Errorf("exec on node %s: %w", node, &nodeexec.ImagePullError{Image: "vendor.example/pxe-server:dev", Node: node,
			Reason: "ImagePullBackOff", Message: `Back-off pulling image "vendor.example/pxe-server:dev"`})
	}
	script := argv[len(argv)-1]
	switch m := bridgeScript.FindStringSubmatch(script); {
	case slices.Equal(argv, []string{"true"}):
		f.probes = append(f.probes, node+" image")
		return nil, nil
	case m != nil:
		f.probes = append(f.probes, node+" bridge "+m[1])
		if slices.Contains(n.bridges, m[1]) {
			return []byte("exists=1\nkind=bridge\nflags=0x1003\nstp=0\nvlan_filtering=0\nports=\n"), nil
		}
		return []byte("exists=0\n"), nil
	case strings.Contains(script, "/proc/self/mountinfo"):
		f.probes = append(f.probes, node+" cni")
		return []byte(n.cni), nil
	case strings.Contains(script, "bridge-nf-call-iptables"):
		f.probes = append(f.probes, node+" netfilter")
		return []byte(n.netfilter), nil
	case strings.Contains(script, "step: "):
		f.probes = append(f.probes, node+" vlan")
		return []byte(n.vlan), nil
	}
	return nil, fmt.Errorf("unexpected probe %q", argv)
}

// fakeKubeVirts lists KubeVirt resources from a table; any other call panics (the embedded
// interface is nil), since a preflight changes nothing.
type fakeKubeVirts struct {
	kvcorev1.KubeVirtInterface
	items []kvv1.KubeVirt
}

func (f fakeKubeVirts) KubeVirts(string) kvcorev1.KubeVirtInterface { return f }

func (f fakeKubeVirts) List(context.Context, metav1.ListOptions) (*kvv1.KubeVirtList, error) {
	return &kvv1.KubeVirtList{Items: f.items}, nil
}

const vlanOK = "step: bridge\ncmd: ip link add name pxecv1 type bridge\nout: \nrc: 0\n" +
	"step: filtering\ncmd: test -e /sys/class/net/pxecv1/bridge/vlan_filtering\nout: \nrc: 0\n" +
	"step: vlan\ncmd: ip link add link pxecv1 name pxecv1.7 type vlan id 7\nout: \nrc: 0\n"

// healthy is a two-node cluster that has everything the suite needs, for each test to break
// one thing of.
type healthy struct {
	kv      kvv1.KubeVirt
	nodes   map[string]*fakeNode
	objects []runtime.Object
	// screenshot says API discovery lists the screenshot subresource; nmstate that it lists
	// kubernetes-nmstate's policies, whose handler reports on every node.
	screenshot, nmstate bool
	cfg                 settings.Config
}

func newHealthy() *healthy {
	kv := kvv1.KubeVirt{ObjectMeta: metav1.ObjectMeta{Namespace: "kubevirt", Name: "kubevirt"},
		Status: kvv1.KubeVirtStatus{Phase: kvv1.KubeVirtPhaseDeployed, ObservedKubeVirtVersion: "v1.9.0",
			Conditions: []kvv1.KubeVirtCondition{{Type: kvv1.KubeVirtConditionAvailable, Status: corev1.ConditionTrue}}}}
	h := &healthy{kv: kv, screenshot: true, nmstate: true, cfg: settings.Default(), nodes: map[string]*fakeNode{}}
	multus := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-multus-ds"},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, NumberReady: 2}}
	h.objects = append(h.objects, multus)
	for _, name := range []string{"w1", "w2"} {
		h.nodes[name] = &fakeNode{bridges: []string{"br1", "br2"}, cni: "bandwidth\nbridge\nhost-local\nmultus\nstatic\n",
			netfilter: "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=1\niptables-forward=-P FORWARD ACCEPT\nip6tables-forward=-P FORWARD ACCEPT\n",
			vlan:      vlanOK}
		h.objects = append(h.objects, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{kvmResource: resource.MustParse("1k")}}})
	}
	return h
}

func (h *healthy) run(t *testing.T) (Report, *fakeNodes) {
	t.Helper()
	kube := kubefake.NewClientset(h.objects...)
	disc := kube.Discovery().(*fakediscovery.FakeDiscovery)
	if h.screenshot {
		disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: screenshotGroupVersion,
			APIResources: []metav1.APIResource{{Name: "virtualmachineinstances"}, {Name: screenshotResource}}})
	}
	var states []runtime.Object
	if h.nmstate {
		disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: "nmstate.io/v1",
			APIResources: []metav1.APIResource{{Name: "nmstates"}, {Name: "nodenetworkconfigurationpolicies"}}})
		for _, n := range []string{"w1", "w2"} {
			s := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
				"handlerNmstateVersion": "2.2.40", "hostNetworkManagerVersion": "1.52.1"}}}
			s.SetAPIVersion("nmstate.io/v1beta1")
			s.SetKind("NodeNetworkState")
			s.SetName(n)
			states = append(states, s)
		}
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{nmstate.StateResource: "NodeNetworkStateList"}, states...)
	var kvs []kvv1.KubeVirt
	if h.kv.Name != "" {
		kvs = append(kvs, h.kv)
	}
	nodes := &fakeNodes{nodes: h.nodes}
	rep, err := Run(context.Background(), Cluster{Kube: kube, KubeVirt: fakeKubeVirts{items: kvs},
		Nodes: []string{"w1", "w2"}, Node: nodes, CNINode: nodes, LinkNode: nodes, NMState: nmstate.NewClient(dyn, 0)}, h.cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep, nodes
}

func result(t *testing.T, rep Report, name string) Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Check == name {
			return r
		}
	}
	t.Fatalf("no result for check %s in %v", name, rep.Results)
	return Result{}
}

func TestRunPassesEveryCheckOnAClusterThatHasEverything(t *testing.T) {
	rep, _ := newHealthy().run(t)
	if len(rep.Results) != len(Checks()) {
		t.Fatalf("%d results, want one per check (%d)", len(rep.Results), len(Checks()))
	}
	for _, r := range rep.Results {
		if r.Status != Pass || r.Fix != "" {
			t.Errorf("%s", r)
		}
	}
	if rep.Err() != nil || rep.KubeVirtVersion != "v1.9.0" || rep.Emulation {
		t.Errorf("Err %v, KubeVirt %q, emulation %v: want nil, v1.9.0, false", rep.Err(), rep.KubeVirtVersion, rep.Emulation)
	}
	if got := result(t, rep, KubeVirt).Reason; got != "KubeVirt v1.9.0 Available (kubevirt/kubevirt)" {
		t.Errorf("kubevirt: %q", got)
	}
}

// TestEachCheckFailsNamingWhatIsMissing breaks one thing of a healthy cluster per case and
// expects that check, and no other, to fail, saying what and where.
func TestEachCheckFailsNamingWhatIsMissing(t *testing.T) {
	tests := []struct {
		check  string
		break_ func(h *healthy)
		want   []string
	}{
		{KubeVirt, func(h *healthy) { h.kv = kvv1.KubeVirt{} }, []string{"no KubeVirt resource in the cluster", "install KubeVirt"}},
		{KubeVirt, func(h *healthy) { h.kv.Status.Conditions = nil }, []string{`kubevirt/kubevirt is not Available (phase "Deployed")`}},
		{KVM, func(h *healthy) {
			h.objects[2] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w2"}}
		}, []string{"devices.kubevirt.io/kvm on node(s) w2", "useEmulation"}},
		{Multus, func(h *healthy) { h.objects = h.objects[1:] }, []string{"no Multus DaemonSet", "install Multus"}},
		{Multus, func(h *healthy) { h.objects[0].(*appsv1.DaemonSet).Status.NumberReady = 1 }, []string{"kube-system/kube-multus-ds 1 of 2 pods ready"}},
		{PXEServerImage, func(h *healthy) { h.nodes["w2"].noPull = true },
			[]string{"image pxec.local/pxe-server:dev cannot be pulled: node w2: ImagePullBackOff", "images.pxeServer"}},
		{CNIPlugins, func(h *healthy) { h.nodes["w2"].cni = "bridge\nhost-local\n" }, []string{"node w2 lacks static in /opt/cni/bin", "install the CNI"}},
		{NMState, func(h *healthy) { h.nmstate = false }, []string{nmstate.NotServed, "the nncp spec skips; to run it, install kubernetes-nmstate"}},
		{Bridge, func(h *healthy) { h.nodes["w2"].bridges = []string{"br2"} }, []string{`bridge "br1" absent on node w2`, `create bridge "br1" on every node`, "bridge.create to nncp"}},
		{IsolationBridge, func(h *healthy) { h.nodes["w1"].bridges = []string{"br1"} }, []string{`bridge "br2" absent on node w1`, "skip.isolation"}},
		{BridgeNetfilter, func(h *healthy) {
			h.nodes["w1"].netfilter = "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=0\niptables-forward=-P FORWARD DROP\nip6tables-forward=-P FORWARD ACCEPT\n"
		}, []string{"node w1: br_netfilter hands frames bridged on br1 to iptables and the iptables FORWARD policy DROP"}},
		{VLAN, func(h *healthy) {
			h.nodes["w1"].vlan = strings.TrimSuffix(vlanOK, "out: \nrc: 0\n") + "out: RTNETLINK answers: Operation not supported\nrc: 2\n"
		}, []string{"node w1: 802.1Q VLANs are not supported", "skip.vlan"}},
		{ScreenshotAPI, func(h *healthy) { h.screenshot = false }, []string{"subresources.kubevirt.io/v1", "preserveSession"}},
		{GuestConsoleLog, func(h *healthy) {
			h.kv.Spec.Configuration.VirtualMachineOptions = &kvv1.VirtualMachineOptions{DisableSerialConsoleLog: &kvv1.DisableSerialConsoleLog{}}
		}, []string{"kubevirt/kubevirt sets virtualMachineOptions.disableSerialConsoleLog", "remove spec.configuration"}},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			h := newHealthy()
			tt.break_(h)
			rep, _ := h.run(t)
			r := result(t, rep, tt.check)
			if r.Status != Fail {
				t.Fatalf("%s, want FAIL", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.String(), w) {
					t.Errorf("%s\nlacks %q", r, w)
				}
			}
			for _, other := range rep.Results {
				// Without KubeVirt the serial console log cannot be read either; without the
				// image, the nodes cannot be probed.
				consequence := (tt.check == KubeVirt && other.Check == GuestConsoleLog && r.Reason == "no KubeVirt resource in the cluster") ||
					(tt.check == PXEServerImage && strings.Contains(other.String(), "node w2 "+notProbed+" — make the probe image pullable first"))
				if other.Check != tt.check && other.Status != Pass && !consequence {
					t.Errorf("also %s", other)
				}
			}
			wantErr := r.Required
			if (rep.Err() != nil) != wantErr {
				t.Errorf("Err() = %v: a failed %s check must stop the suite only when required (%v)", rep.Err(), tt.check, r.Required)
			}
			if !r.Required && rep.Unavailable(tt.check) != r.Reason+" — "+r.Fix {
				t.Errorf("Unavailable(%s) = %q, want the line's reason and fix for the spec's skip", tt.check, rep.Unavailable(tt.check))
			}
		})
	}
}

// TestBridgeCheckSaysWhichModeTheRunUses: the bridge expected on every node, or created by
// policy (bridge.create: nncp), which needs kubernetes-nmstate and a name no node has.
func TestBridgeCheckSaysWhichModeTheRunUses(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *healthy)
		status Status
		want   string
	}{
		{"expected", func(*healthy) {}, Pass, `PASS  bridge  bridge "br1" expected on every node, and there (2)`},
		{"by policy", func(h *healthy) { h.cfg.BridgeCreate = settings.BridgeByNNCP; h.cfg.Bridge = "br9" }, Pass,
			`PASS  bridge  bridge "br9" created by NodeNetworkConfigurationPolicy before the specs and removed at the end (kubernetes-nmstate: nmstate 2.2.40, NetworkManager 1.52.1)`},
		{"by policy without kubernetes-nmstate", func(h *healthy) { h.cfg.BridgeCreate = settings.BridgeByNNCP; h.cfg.Bridge = "br9"; h.nmstate = false }, Fail,
			`FAIL  bridge  bridge.create is nncp, but ` + nmstate.NotServed + ` — install kubernetes-nmstate (its operator and an NMState resource; its handler needs NetworkManager on the nodes), or leave bridge.create empty and create bridge "br9" on every node`},
		{"by policy, but a node has the bridge already", func(h *healthy) { h.cfg.BridgeCreate = settings.BridgeByNNCP; h.nodes["w1"].bridges = []string{"br2"} }, Fail,
			`FAIL  bridge  bridge "br1" already on node w2 — the suite creates bridge "br1" by policy and removes it at the end: set bridge to a name no node has, or leave bridge.create empty to use the existing one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHealthy()
			tt.change(h)
			rep, _ := h.run(t)
			r := result(t, rep, Bridge)
			if r.Status != tt.status || r.String() != tt.want {
				t.Errorf("\n%s\nwant\n%s", r, tt.want)
			}
			if (rep.Err() != nil) != (tt.status == Fail) {
				t.Errorf("Err() = %v: the bridge check is required", rep.Err())
			}
		})
	}
}

func TestAnUnpullableImageIsTheImagesFailureNotEveryProbes(t *testing.T) {
	h := newHealthy()
	h.nodes["w2"].noPull = true
	rep, nodes := h.run(t)
	if n := slices.Index(nodes.probes, "w2 pull"); n < 0 || slices.Contains(nodes.probes[n+1:], "w2 pull") {
		t.Errorf("probes %q: want w2 tried once, by the image's check", nodes.probes)
	}
	if r := result(t, rep, Bridge); r.Status != Fail || !strings.Contains(r.Reason, "node w2 not probed: the probe image cannot be pulled there (see pxe-server-image)") {
		t.Errorf("%s: want w2 reported as not probed, pointing at the image's check", r)
	}
}

func TestUseEmulationPassesWithoutKVM(t *testing.T) {
	h := newHealthy()
	h.kv.Spec.Configuration.DeveloperConfiguration = &kvv1.DeveloperConfiguration{UseEmulation: true}
	for i := 1; i < len(h.objects); i++ {
		h.objects[i].(*corev1.Node).Status.Allocatable = nil
	}
	rep, _ := h.run(t)
	if r := result(t, rep, KVM); r.Status != Pass || !strings.Contains(r.Reason, "useEmulation is set") {
		t.Errorf("%s, want PASS by useEmulation", r)
	}
	if !rep.Emulation {
		t.Error("Report.Emulation false under useEmulation")
	}
}

func TestSkipSwitchesSkipTheirChecksWithoutProbing(t *testing.T) {
	h := newHealthy()
	h.cfg.Skip = settings.Skip{Isolation: true, VLAN: true}
	h.nodes["w1"].bridges = []string{"br1"} // would fail the isolation bridge's check
	rep, nodes := h.run(t)
	for check, want := range map[string]string{IsolationBridge: "skipped by skip.isolation", VLAN: "skipped by skip.vlan"} {
		if r := result(t, rep, check); r.Status != Skip || r.Reason != want || rep.Unavailable(check) != want {
			t.Errorf("%s: want SKIP %q", r, want)
		}
	}
	for _, p := range nodes.probes {
		if strings.HasSuffix(p, " bridge br2") || strings.HasSuffix(p, " vlan") {
			t.Errorf("probe %q ran though switched off", p)
		}
	}
	if rep.Err() != nil {
		t.Errorf("Err() = %v", rep.Err())
	}
	h = newHealthy()
	h.cfg.IsolationBridge = ""
	rep, _ = h.run(t)
	if r := result(t, rep, IsolationBridge); r.Status != Skip || !strings.Contains(r.Reason, "isolationBridge is empty") {
		t.Errorf("%s: want SKIP, no isolation bridge configured", r)
	}
}

// TestReportLines is the output format of `make preflight` and of the suite's log: one line per
// check, status, name padded to the longest, reason, and " — " with what to do.
func TestReportLines(t *testing.T) {
	rep := Report{Results: []Result{
		{Check: "kubevirt", Required: true, Status: Pass, Reason: "KubeVirt v1.9.0 Available (kubevirt/kubevirt)"},
		{Check: "bridge", Required: true, Status: Fail, Reason: `bridge "br1" absent on node w2`, Fix: `create bridge "br1" on every node`},
		{Check: "isolation-bridge", Status: Skip, Reason: "skipped by skip.isolation"},
		{Check: "multus", Required: true, Status: Fail, Reason: "no Multus DaemonSet in any namespace", Fix: "install Multus"},
		{Check: "screenshot-api", Status: Fail, Reason: "no screenshot", Fix: "VNC instead"},
	}}
	var b bytes.Buffer
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `PASS  kubevirt          KubeVirt v1.9.0 Available (kubevirt/kubevirt)
FAIL  bridge            bridge "br1" absent on node w2 — create bridge "br1" on every node
SKIP  isolation-bridge  skipped by skip.isolation
FAIL  multus            no Multus DaemonSet in any namespace — install Multus
FAIL  screenshot-api    no screenshot — VNC instead
`
	if b.String() != want {
		t.Errorf("lines\n%s\nwant\n%s", b.String(), want)
	}
	err := rep.Err()
	if err == nil {
		t.Fatal("Err() = nil with two required checks failed")
	}
	wantErr := "preflight: 2 required check(s) failed:\n" +
		"FAIL  bridge  bridge \"br1\" absent on node w2 — create bridge \"br1\" on every node\n" +
		"FAIL  multus  no Multus DaemonSet in any namespace — install Multus"
	if err.Error() != wantErr {
		t.Errorf("Err()\n%s\nwant\n%s", err, wantErr)
	}
}
