package nmstate

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The kubernetes-nmstate resources, as kubernetes-nmstate's CRDs serve them (all cluster-scoped).
var (
	PolicyResource    = schema.GroupVersionResource{Group: Group, Version: "v1", Resource: "nodenetworkconfigurationpolicies"}
	EnactmentResource = schema.GroupVersionResource{Group: Group, Version: "v1beta1", Resource: "nodenetworkconfigurationenactments"}
	StateResource     = schema.GroupVersionResource{Group: Group, Version: "v1beta1", Resource: "nodenetworkstates"}
)

// Group is kubernetes-nmstate's API group.
const Group = "nmstate.io"

// PolicyKind is the kind of a NodeNetworkConfigurationPolicy.
const PolicyKind = "NodeNetworkConfigurationPolicy"

// Interface is one entry of an nmstate desired state's interfaces list, in nmstate's own
// schema (name, type, state and the type's settings).
type Interface map[string]any

// Interface states in nmstate's schema.
const (
	StateUp     = "up"
	StateAbsent = "absent"
)

// LinuxBridge is a Linux bridge named name, up, without IPv4 or IPv6 (it carries the PXE
// network at layer 2 only), with STP off (a port would otherwise wait in the listening and
// learning states before forwarding the guest's first DHCP) and ports as its ports; with no
// ports it is port-less, local to each node.
func LinuxBridge(name string, ports ...string) Interface {
	portList := make([]any, 0, len(ports))
	for _, p := range ports {
		portList = append(portList, map[string]any{"name": p})
	}
	return Interface{
		"name":  name,
		"type":  "linux-bridge",
		"state": StateUp,
		"ipv4":  map[string]any{"enabled": false},
		"ipv6":  map[string]any{"enabled": false},
		"bridge": map[string]any{
			"options": map[string]any{"stp": map[string]any{"enabled": false}},
			"port":    portList,
		},
	}
}

// PolicyOption sets something on a policy that Policy builds.
type PolicyOption func(p *unstructured.Unstructured)

// WithLabel labels the policy.
func WithLabel(key, value string) PolicyOption {
	return func(p *unstructured.Unstructured) {
		l := p.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		l[key] = value
		p.SetLabels(l)
	}
}

// Policy is a NodeNetworkConfigurationPolicy named name whose desired state is ifaces, for
// every node the kubernetes-nmstate handler runs on (no nodeSelector).
func Policy(name string, ifaces []Interface, opts ...PolicyOption) *unstructured.Unstructured {
	list := make([]any, 0, len(ifaces))
	for _, i := range ifaces {
		list = append(list, map[string]any(i))
	}
	p := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"desiredState": map[string]any{"interfaces": list}},
	}}
	p.SetAPIVersion(PolicyResource.GroupVersion().String())
	p.SetKind(PolicyKind)
	p.SetName(name)
	for _, o := range opts {
		o(p)
	}
	return p
}

// Absent is a copy of policy p whose interfaces are absent: each keeps its name and type and
// nothing else, which nmstate reads as "remove this interface". Applying it undoes p.
func Absent(p *unstructured.Unstructured) *unstructured.Unstructured {
	out := p.DeepCopy()
	ifaces, _, _ := unstructured.NestedSlice(out.Object, "spec", "desiredState", "interfaces")
	absent := make([]any, 0, len(ifaces))
	for _, raw := range ifaces {
		i, _ := raw.(map[string]any)
		absent = append(absent, map[string]any{"name": i["name"], "type": i["type"], "state": StateAbsent})
	}
	// The spec is ours: only a malformed p (no spec map) could make this fail, and then the
	// copy is returned as it was.
	_ = unstructured.SetNestedSlice(out.Object, absent, "spec", "desiredState", "interfaces")
	return out
}
