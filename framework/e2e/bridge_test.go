package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
)

func TestBridgeByPolicyRefusesWithoutKubernetesNMState(t *testing.T) {
	e := &Env{NNCPReason: nmstate.NotServed}
	b, err := e.BridgeByPolicy(context.Background(), "pxecbr0", "", "a-spec")
	if b != nil || err == nil || !strings.Contains(err.Error(), "bridge pxecbr0 by policy: "+nmstate.NotServed) {
		t.Errorf("BridgeByPolicy = %v, %v; want no bridge and the reason", b, err)
	}
}

// TestFinishRemovesTheRunsBridge: a bridge CreateBridge made goes at Finish, by the same
// policy with the bridge absent, and the policy is deleted.
func TestFinishRemovesTheRunsBridge(t *testing.T) {
	obj := func(gvr schema.GroupVersionResource, kind, name string, status map[string]any, labels map[string]string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
		u.SetAPIVersion(gvr.GroupVersion().String())
		u.SetKind(kind)
		u.SetName(name)
		u.SetLabels(labels)
		return u
	}
	avail := []any{map[string]any{"type": "Available", "status": "True", "reason": "SuccessfullyConfigured"}}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		nmstate.PolicyResource: "NodeNetworkConfigurationPolicyList", nmstate.EnactmentResource: "NodeNetworkConfigurationEnactmentList",
		nmstate.StateResource: "NodeNetworkStateList",
	},
		obj(nmstate.StateResource, "NodeNetworkState", "n1", map[string]any{"currentState": map[string]any{"interfaces": []any{map[string]any{"name": "eth0", "type": "ethernet"}}}}, nil),
		obj(nmstate.EnactmentResource, "NodeNetworkConfigurationEnactment", "n1.p", map[string]any{"conditions": avail},
			map[string]string{"nmstate.io/policy": "p", "nmstate.io/node": "n1"}),
	)
	e := envWithNamespaces(t, "vendor-preflight-xprzn")
	e.NMState = nmstate.NewClient(dyn, time.Millisecond)
	ctx := context.Background()
	b, err := e.NMState.CreateBridge(ctx, nmstate.BridgeConfig{Bridge: "br1", Policy: "p", Nodes: []string{"n1"}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := dyn.Resource(nmstate.PolicyResource).Get(ctx, "p", metav1.GetOptions{})
	p.Object["status"] = map[string]any{"conditions": avail}
	if _, err := dyn.Resource(nmstate.PolicyResource).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.bridge = b

	if err := e.Finish(ctx, true); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if _, err := dyn.Resource(nmstate.PolicyResource).Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the run's policy after Finish: %v, want it deleted", err)
	}
	var absent bool
	for _, a := range dyn.Actions() {
		if u, ok := a.(clienttesting.UpdateAction); ok && a.GetResource() == nmstate.PolicyResource {
			ifaces, _, _ := unstructured.NestedSlice(u.GetObject().(*unstructured.Unstructured).Object, "spec", "desiredState", "interfaces")
			absent = absent || (len(ifaces) == 1 && ifaces[0].(map[string]any)["state"] == nmstate.StateAbsent)
		}
	}
	if !absent {
		t.Error("Finish deleted the policy without applying it with the bridge absent first")
	}
}
