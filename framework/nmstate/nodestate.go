package nmstate

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// NodeState is what kubernetes-nmstate reports of one node (its NodeNetworkState).
type NodeState struct {
	Node string
	// Interfaces are the node's interfaces as nmstate shows them; the handler leaves out the
	// veths of pods, which NetworkManager does not manage.
	Interfaces []Link
	// NmstateVersion is the handler's nmstate; NetworkManagerVersion the node's NetworkManager.
	NmstateVersion, NetworkManagerVersion string
}

// Link is one interface of a NodeState.
type Link struct {
	Name, Type, State string
	// Controller is the bridge or bond the interface is a port of; empty when none.
	Controller string
	// Addresses are its IPv4 and IPv6 addresses.
	Addresses []netip.Addr
}

// Names returns the interfaces' names, sorted.
func (s NodeState) Names() []string {
	names := make([]string, 0, len(s.Interfaces))
	for _, l := range s.Interfaces {
		names = append(names, l.Name)
	}
	slices.Sort(names)
	return names
}

// NodeState reads node's NodeNetworkState.
func (c *Client) NodeState(ctx context.Context, node string) (NodeState, error) {
	u, err := c.dyn.Resource(StateResource).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return NodeState{}, fmt.Errorf("read NodeNetworkState %s: %w", node, err)
	}
	return parseNodeState(u), nil
}

// NodeStates reads the NodeNetworkState of each of nodes.
func (c *Client) NodeStates(ctx context.Context, nodes []string) ([]NodeState, error) {
	out := make([]NodeState, 0, len(nodes))
	for _, n := range nodes {
		s, err := c.NodeState(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseNodeState(u *unstructured.Unstructured) NodeState {
	s := NodeState{Node: u.GetName()}
	s.NmstateVersion, _, _ = unstructured.NestedString(u.Object, "status", "handlerNmstateVersion")
	s.NetworkManagerVersion, _, _ = unstructured.NestedString(u.Object, "status", "hostNetworkManagerVersion")
	ifaces, _, _ := unstructured.NestedSlice(u.Object, "status", "currentState", "interfaces")
	for _, raw := range ifaces {
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		l := Link{Name: str("name"), Type: str("type"), State: str("state"), Controller: str("controller")}
		if l.Controller == "" {
			l.Controller = str("master") // nmstate before 2.0
		}
		for _, family := range []string{"ipv4", "ipv6"} {
			addrs, _, _ := unstructured.NestedSlice(m, family, "address")
			for _, a := range addrs {
				am, _ := a.(map[string]any)
				ip, _ := am["ip"].(string)
				if addr, err := netip.ParseAddr(ip); err == nil {
					l.Addresses = append(l.Addresses, addr)
				}
			}
		}
		s.Interfaces = append(s.Interfaces, l)
	}
	return s
}

// Versions says which nmstate and NetworkManager the handler reports on the nodes of states,
// e.g. "nmstate 2.2.40, NetworkManager 1.52.1" (each distinct pair once).
func Versions(states []NodeState) string {
	var vs []string
	for _, s := range states {
		v := fmt.Sprintf("nmstate %s, NetworkManager %s", orUnknown(s.NmstateVersion), orUnknown(s.NetworkManagerVersion))
		if !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return "versions unknown: no NodeNetworkState"
	}
	return strings.Join(vs, "; ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// SpareLink returns the name of an ethernet interface that every node in states has and
// none uses: no controller (it is no port of a bridge or bond) and no address other than
// IPv6 link-local. Such a link carries nothing of the node's, so a bridge may take it as its
// port. It returns "" when there is none (kind nodes have one ethernet link, the addressed
// eth0); with several, the first by name.
func SpareLink(states []NodeState) string {
	if len(states) == 0 {
		return ""
	}
	var spare []string
	for _, l := range states[0].Interfaces {
		if unused(l) {
			spare = append(spare, l.Name)
		}
	}
	slices.Sort(spare)
	for _, name := range spare {
		onEvery := true
		for _, s := range states[1:] {
			i := slices.IndexFunc(s.Interfaces, func(l Link) bool { return l.Name == name })
			if i < 0 || !unused(s.Interfaces[i]) {
				onEvery = false
				break
			}
		}
		if onEvery {
			return name
		}
	}
	return ""
}

func unused(l Link) bool {
	if l.Type != "ethernet" || l.Controller != "" {
		return false
	}
	for _, a := range l.Addresses {
		if !a.IsLinkLocalUnicast() {
			return false
		}
	}
	return true
}
