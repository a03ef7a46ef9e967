package nmstate

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
)

// newFake is a Client on a fake dynamic client holding objs, polling every millisecond.
func newFake(objs ...runtime.Object) (*Client, *dynamicfake.FakeDynamicClient) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		PolicyResource:    "NodeNetworkConfigurationPolicyList",
		EnactmentResource: "NodeNetworkConfigurationEnactmentList",
		StateResource:     "NodeNetworkStateList",
	}, objs...)
	return NewClient(dyn, time.Millisecond), dyn
}

func cond(t, status, reason, msg string) any {
	return map[string]any{"type": t, "status": status, "reason": reason, "message": msg}
}

// policyWith is a bridge policy at generation gen with the given status conditions.
func policyWith(name string, gen int64, conds ...any) *unstructured.Unstructured {
	p := Policy(name, []Interface{LinuxBridge("pxecbr0")})
	p.SetGeneration(gen)
	p.Object["status"] = map[string]any{"conditions": conds}
	return p
}

// enactment is node's enactment of policy at policy generation gen.
func enactment(node, policy string, gen int64, conds ...any) *unstructured.Unstructured {
	e := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"policyGeneration": gen, "conditions": conds}}}
	e.SetAPIVersion(EnactmentResource.GroupVersion().String())
	e.SetKind("NodeNetworkConfigurationEnactment")
	e.SetName(node + "." + policy)
	e.SetLabels(map[string]string{enactmentPolicyLabel: policy, enactmentNodeLabel: node})
	return e
}

// nodeState is node's NodeNetworkState listing ifaces (nmstate schema).
func nodeState(node string, ifaces ...any) *unstructured.Unstructured {
	s := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"handlerNmstateVersion": "2.2.40", "hostNetworkManagerVersion": "1.52.1",
		"currentState": map[string]any{"interfaces": ifaces}}}}
	s.SetAPIVersion(StateResource.GroupVersion().String())
	s.SetKind("NodeNetworkState")
	s.SetName(node)
	return s
}

func iface(name, typ string, addrs ...string) any {
	var v4 []any
	for _, a := range addrs {
		v4 = append(v4, map[string]any{"ip": a, "prefix-length": int64(24)})
	}
	return map[string]any{"name": name, "type": typ, "state": "up", "ipv4": map[string]any{"enabled": len(v4) > 0, "address": v4}}
}

func TestLinuxBridgeHasSTPOffNoAddressAndItsPorts(t *testing.T) {
	b := LinuxBridge("br9", "eth1")
	if b["type"] != "linux-bridge" || b["state"] != StateUp || b["name"] != "br9" {
		t.Errorf("bridge = %v", b)
	}
	stp, _, _ := unstructured.NestedBool(map[string]any(b), "bridge", "options", "stp", "enabled")
	v4, _, _ := unstructured.NestedBool(map[string]any(b), "ipv4", "enabled")
	v6, _, _ := unstructured.NestedBool(map[string]any(b), "ipv6", "enabled")
	if stp || v4 || v6 {
		t.Errorf("stp %v ipv4 %v ipv6 %v, want all false", stp, v4, v6)
	}
	ports, _, _ := unstructured.NestedSlice(map[string]any(b), "bridge", "port")
	if !reflect.DeepEqual(ports, []any{map[string]any{"name": "eth1"}}) {
		t.Errorf("ports = %v, want eth1", ports)
	}
	if ports, _, _ := unstructured.NestedSlice(map[string]any(LinuxBridge("br9")), "bridge", "port"); len(ports) != 0 {
		t.Errorf("port-less bridge has ports %v", ports)
	}
}

func TestAbsentKeepsEachInterfacesNameAndTypeOnly(t *testing.T) {
	p := Policy("p", []Interface{LinuxBridge("br9", "eth1")}, WithLabel("k", "v"))
	a := Absent(p)
	got, _, _ := unstructured.NestedSlice(a.Object, "spec", "desiredState", "interfaces")
	want := []any{map[string]any{"name": "br9", "type": "linux-bridge", "state": StateAbsent}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("absent interfaces = %v, want %v", got, want)
	}
	if a.GetName() != "p" || a.GetLabels()["k"] != "v" {
		t.Errorf("absent policy lost its name or labels: %s %v", a.GetName(), a.GetLabels())
	}
	if orig, _, _ := unstructured.NestedSlice(p.Object, "spec", "desiredState", "interfaces"); orig[0].(map[string]any)["state"] != StateUp {
		t.Error("Absent changed the policy it was given")
	}
}

func TestApplyCreatesThenReplacesTheSpec(t *testing.T) {
	c, dyn := newFake()
	ctx := context.Background()
	p := Policy("p", []Interface{LinuxBridge("br9")})
	if _, err := c.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apply(ctx, Absent(p)); err != nil {
		t.Fatal(err)
	}
	got, err := dyn.Resource(PolicyResource).Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ifaces, _, _ := unstructured.NestedSlice(got.Object, "spec", "desiredState", "interfaces")
	if s := ifaces[0].(map[string]any)["state"]; s != StateAbsent {
		t.Errorf("after the second Apply the state is %v, want %s", s, StateAbsent)
	}
}

// TestWaitAvailableFailsFastNamingTheFailure: a failure ends the wait at once (not at the
// context's end) with the object, the condition and nmstate's own message.
func TestWaitAvailableFailsFastNamingTheFailure(t *testing.T) {
	const nmMsg = "error reconciling NodeNetworkConfigurationPolicy on node a: failed to execute nmstatectl set: InvalidArgument: Interface eth9 not found"
	tests := []struct {
		name string
		objs []runtime.Object
		want []string
	}{
		{"failing enactment", []runtime.Object{
			policyWith("p", 1, cond(Progressing, "True", "ConfigurationProgressing", "")),
			enactment("a", "p", 1, cond(Failing, "True", "FailedToConfigure", nmMsg)),
			enactment("b", "p", 1, cond(Progressing, "True", "ConfigurationProgressing", "")),
		}, []string{"enactment a.p (node a) is Failing (FailedToConfigure)", nmMsg}},
		{"aborted enactment", []runtime.Object{
			policyWith("p", 1),
			enactment("a", "p", 1, cond(Aborted, "True", "ConfigurationAborted", "another node failed")),
		}, []string{"enactment a.p (node a) is Aborted", "another node failed"}},
		{"degraded policy", []runtime.Object{
			policyWith("p", 1, cond(Degraded, "True", "FailedToConfigure", "1/2 nodes failed to configure")),
		}, []string{"NodeNetworkConfigurationPolicy p is Degraded (FailedToConfigure): 1/2 nodes failed to configure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFake(tt.objs...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := c.WaitAvailable(ctx, "p", []string{"a", "b"})
			if err == nil {
				t.Fatal("WaitAvailable succeeded on a failure")
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("failure seen after %s, want at once", time.Since(start))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestWaitAvailableWaitsForEveryNodeAtTheCurrentGeneration(t *testing.T) {
	avail := cond(Available, "True", "SuccessfullyConfigured", "")
	c, dyn := newFake(
		policyWith("p", 2, avail),
		// a's enactment is about the first desired state, and failed then: no failure now.
		enactment("a", "p", 1, cond(Failing, "True", "FailedToConfigure", "old")),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := c.WaitAvailable(ctx, "p", []string{"a", "b"})
	cancel()
	for _, w := range []string{"enactment a.p is about policy generation 1, the policy is at 2", "no enactment on node b", context.DeadlineExceeded.Error()} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}

	// Both nodes enact generation 2 while the wait runs.
	go func() {
		time.Sleep(20 * time.Millisecond)
		ctx := context.Background()
		for _, n := range []string{"a", "b"} {
			e := enactment(n, "p", 2, avail)
			if _, err := dyn.Resource(EnactmentResource).Update(ctx, e, metav1.UpdateOptions{}); err != nil {
				_, _ = dyn.Resource(EnactmentResource).Create(ctx, e, metav1.CreateOptions{})
			}
		}
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitAvailable(ctx, "p", []string{"a", "b"}); err != nil {
		t.Errorf("WaitAvailable once every node enacted generation 2: %v", err)
	}
}

func TestServedReadsAPIDiscovery(t *testing.T) {
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{}}
	if ok, err := Served(disc); ok || err != nil {
		t.Errorf("Served without nmstate.io = %v, %v; want false, nil", ok, err)
	}
	disc.Resources = []*metav1.APIResourceList{{GroupVersion: "nmstate.io/v1", APIResources: []metav1.APIResource{{Name: "nmstates"}}}}
	if ok, err := Served(disc); ok || err != nil {
		t.Errorf("Served with nmstate.io/v1 but no policies = %v, %v; want false, nil", ok, err)
	}
	disc.Resources[0].APIResources = append(disc.Resources[0].APIResources, metav1.APIResource{Name: "nodenetworkconfigurationpolicies"})
	if ok, err := Served(disc); !ok || err != nil {
		t.Errorf("Served with policies = %v, %v; want true, nil", ok, err)
	}
}

func TestSpareLinkIsAnUnusedEthernetLinkOnEveryNode(t *testing.T) {
	link := func(name, typ, controller string, addrs ...string) Link {
		l := Link{Name: name, Type: typ, Controller: controller}
		for _, a := range addrs {
			l.Addresses = append(l.Addresses, netip.MustParseAddr(a))
		}
		return l
	}
	kind := []Link{link("lo", "loopback", "", "127.0.0.1"), link("eth0", "ethernet", "", "172.18.0.2", "fe80::1")}
	tests := []struct {
		name   string
		states []NodeState
		want   string
	}{
		{"kind node: only the addressed eth0", []NodeState{{Interfaces: kind}}, ""},
		{"an unaddressed ethernet link on both nodes", []NodeState{
			{Interfaces: append(slices.Clone(kind), link("eth2", "ethernet", "", "fe80::2"), link("eth1", "ethernet", ""))},
			{Interfaces: append(slices.Clone(kind), link("eth1", "ethernet", ""))},
		}, "eth1"},
		{"a port of a bridge is not spare", []NodeState{{Interfaces: append(slices.Clone(kind), link("eth1", "ethernet", "br-ex"))}}, ""},
		{"spare on one node only", []NodeState{
			{Interfaces: append(slices.Clone(kind), link("eth1", "ethernet", ""))},
			{Interfaces: append(slices.Clone(kind), link("eth1", "ethernet", "", "192.0.2.1"))},
		}, ""},
		{"not ethernet", []NodeState{{Interfaces: []Link{link("dummy0", "dummy", "")}}}, ""},
		{"no node", nil, ""},
	}
	for _, tt := range tests {
		if got := SpareLink(tt.states); got != tt.want {
			t.Errorf("%s: SpareLink = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestNodeStateReadsInterfacesAndVersions(t *testing.T) {
	c, _ := newFake(nodeState("a", iface("lo", "loopback", "127.0.0.1"), iface("eth0", "ethernet", "172.18.0.2")))
	s, err := c.NodeState(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("Names = %v", got)
	}
	if s.Interfaces[1].Addresses[0] != netip.MustParseAddr("172.18.0.2") {
		t.Errorf("eth0 addresses = %v", s.Interfaces[1].Addresses)
	}
	if v := Versions([]NodeState{s, s}); v != "nmstate 2.2.40, NetworkManager 1.52.1" {
		t.Errorf("Versions = %q", v)
	}
	if _, err := c.NodeState(context.Background(), "b"); err == nil || !strings.Contains(err.Error(), "NodeNetworkState b") {
		t.Errorf("missing state: error %v, want one naming NodeNetworkState b", err)
	}
}

// TestBridgeLifecycle: CreateBridge records the interfaces and applies the bridge; Remove
// applies the same policy absent, waits and deletes it; WaitRestored compares.
func TestBridgeLifecycle(t *testing.T) {
	avail := cond(Available, "True", "SuccessfullyConfigured", "")
	c, dyn := newFake(nodeState("a", iface("lo", "loopback"), iface("eth0", "ethernet")), enactment("a", "pol", 0, avail))
	ctx := context.Background()
	b, err := c.CreateBridge(ctx, BridgeConfig{Bridge: "pxecbr0", Policy: "pol", Nodes: []string{"a"},
		Labels: map[string]string{"owner": "test"}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Before["a"], []string{"eth0", "lo"}) {
		t.Errorf("Before = %v", b.Before)
	}
	// The fake has no handler: mark the policy Available as kubernetes-nmstate would.
	p, _ := dyn.Resource(PolicyResource).Get(ctx, "pol", metav1.GetOptions{})
	p.Object["status"] = map[string]any{"conditions": []any{avail}}
	if _, err := dyn.Resource(PolicyResource).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.GetLabels()["owner"] != "test" {
		t.Errorf("policy labels = %v", p.GetLabels())
	}
	if err := b.WaitAvailable(ctx); err != nil {
		t.Fatal(err)
	}

	// The bridge shows up on the node; WaitRestored names it.
	_, err = dyn.Resource(StateResource).Update(ctx, nodeState("a", iface("lo", "loopback"), iface("eth0", "ethernet"), iface("pxecbr0", "linux-bridge")), metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRestored(ctx); err == nil || !strings.Contains(err.Error(), "node a has pxecbr0, which it had not before") {
		t.Errorf("WaitRestored with the bridge still there: %v", err)
	}

	dyn.ClearActions()
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	var absentApplied, deleted bool
	for _, a := range dyn.Actions() {
		if u, ok := a.(clienttesting.UpdateAction); ok && a.GetResource() == PolicyResource {
			ifaces, _, _ := unstructured.NestedSlice(u.GetObject().(*unstructured.Unstructured).Object, "spec", "desiredState", "interfaces")
			absentApplied = len(ifaces) == 1 && ifaces[0].(map[string]any)["state"] == StateAbsent
		}
		if a.GetVerb() == "delete" && a.GetResource() == PolicyResource {
			deleted = absentApplied // deleted after the absent state was applied
		}
	}
	if !absentApplied || !deleted {
		t.Errorf("Remove: absent applied %v, then deleted %v; actions %v", absentApplied, deleted, dyn.Actions())
	}
	if err := b.Remove(ctx); err != nil {
		t.Errorf("a second Remove: %v", err)
	}

	_, err = dyn.Resource(StateResource).Update(ctx, nodeState("a", iface("lo", "loopback"), iface("eth0", "ethernet")), metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.WaitRestored(ctx); err != nil {
		t.Errorf("WaitRestored with the interfaces as before: %v", err)
	}
}
