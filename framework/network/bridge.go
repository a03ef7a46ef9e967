package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
)

// DefaultBridge is the node bridge the documented procedure uses.
const DefaultBridge = "br1"

// BridgeOption changes what EnsureBridge does.
type BridgeOption interface {
	applyBridge(*bridgeSettings)
}

type bridgeOptionFunc func(*bridgeSettings)

func (f bridgeOptionFunc) applyBridge(s *bridgeSettings) { f(s) }

type bridgeSettings struct {
	forwardAccept bool
}

// WithForwardAccept decides whether EnsureBridge, on a bridge it creates, adds iptables rules
// that accept frames bridged within it when br_netfilter hands bridged frames to iptables
// (on by default; REFERENCE §2.7: a FORWARD policy of DROP otherwise drops the VM's DHCP).
func WithForwardAccept(on bool) BridgeOption {
	return bridgeOptionFunc(func(s *bridgeSettings) { s.forwardAccept = on })
}

// Finding is a preflight observation about a node: which check, whether it will break the
// procedure, and a plain sentence saying what was found and what to do about it.
type Finding struct {
	Check   string
	Node    string
	Problem bool
	Message string
}

func (f Finding) String() string {
	level := "ok"
	if f.Problem {
		level = "PROBLEM"
	}
	return fmt.Sprintf("%s [%s] node %s: %s", level, f.Check, f.Node, f.Message)
}

// Bridge is a Linux bridge on one node, as EnsureBridge found or made it.
type Bridge struct {
	// Name and Node say which bridge on which node.
	Name, Node string
	// Created reports whether EnsureBridge created the bridge (and so Delete removes it).
	Created bool
	// Findings are the preflight observations made while ensuring the bridge.
	Findings []Finding

	runner nodeexec.Runner
	mu     sync.Mutex
	// undo holds the commands that reverse what EnsureBridge did, in the order to run them.
	undo [][]string
}

// EnsureBridge makes sure a Linux bridge called name exists on node: it creates it when
// absent (up, no address, IPv6 off, STP off, forward delay 0) and, when br_netfilter would
// hand the bridge's frames to iptables, accepts them in the FORWARD chain. A bridge that
// already exists is used as it is and never changed. The returned Bridge, also returned with
// an error when something was created before the failure, undoes only what this call did.
func EnsureBridge(ctx context.Context, n nodeexec.Runner, node, name string, opts ...BridgeOption) (*Bridge, error) {
	if err := ValidateBridgeName(name); err != nil {
		return nil, fmt.Errorf("ensure bridge on node %s: %w", node, err)
	}
	s := bridgeSettings{forwardAccept: true}
	for _, o := range opts {
		o.applyBridge(&s)
	}
	b := &Bridge{Name: name, Node: node, runner: n}
	st, err := InspectBridge(ctx, n, node, name)
	if err != nil {
		return nil, err
	}
	if st.Exists {
		if st.Kind != "bridge" {
			return nil, fmt.Errorf("ensure bridge %s on node %s: a %s link of that name exists, not a bridge", name, node, kindOrUnknown(st.Kind))
		}
		f, err := CheckBridgeNetfilter(ctx, n, node, name)
		if err != nil {
			return nil, err
		}
		b.Findings = append(b.Findings, f)
		if !st.Up {
			b.Findings = append(b.Findings, Finding{Check: "bridge-up", Node: node, Problem: true,
				Message: fmt.Sprintf("bridge %s exists but is down; it is not ours to change: bring it up with `ip link set dev %s up`", name, name)})
		}
		return b, nil
	}

	cmds := bridgeCreateCommands(name)
	if _, err := n.NodeExec(ctx, node, cmds[0]...); err != nil {
		return nil, fmt.Errorf("create bridge %s on node %s: %w", name, node, err)
	}
	b.Created = true
	b.undo = append(b.undo, bridgeDeleteCommand(name))
	for _, c := range cmds[1:] {
		if _, err := n.NodeExec(ctx, node, c...); err != nil {
			return b, fmt.Errorf("set up bridge %s on node %s: %w", name, node, err)
		}
	}

	nf, err := readNetfilter(ctx, n, node)
	if err != nil {
		return b, err
	}
	f := nf.finding(node, name)
	if s.forwardAccept {
		for _, fam := range nf.filteringFamilies() {
			add, del := forwardAcceptCommands(fam, name)
			if _, err := n.NodeExec(ctx, node, add...); err != nil {
				return b, fmt.Errorf("accept frames bridged on %s in %s FORWARD on node %s: %w", name, fam, node, err)
			}
			// Rules go before the bridge's own deletion, so they are removed first.
			b.undo = append([][]string{del}, b.undo...)
		}
		if len(nf.filteringFamilies()) > 0 {
			f.Problem = false
			f.Message += fmt.Sprintf("; added FORWARD rules accepting frames bridged within %s (removed with the bridge)", name)
		}
	}
	b.Findings = append(b.Findings, f)
	return b, nil
}

func kindOrUnknown(k string) string {
	if k == "" {
		return "plain"
	}
	return k
}

// Delete removes what EnsureBridge added: its FORWARD rules and, only when EnsureBridge
// created it, the bridge. A second call does nothing.
func (b *Bridge) Delete(ctx context.Context) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, c := range b.undo {
		if _, err := b.runner.NodeExec(ctx, b.Node, c...); err != nil {
			errs = append(errs, err)
		}
	}
	b.undo = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete bridge %s on node %s: %w", b.Name, b.Node, err)
	}
	return nil
}

// bridgeCreateCommands renders the node commands that create the bridge: the link itself
// (STP off, no forward delay, so ports forward at once and DHCP is not lost while a port
// learns), IPv6 off so the node takes no address from router advertisements on the PXE
// segment, and up.
func bridgeCreateCommands(name string) [][]string {
	return [][]string{
		{"ip", "link", "add", "name", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"sh", "-c", fmt.Sprintf("if [ -e /proc/sys/net/ipv6/conf/%[1]s ]; then echo 1 > /proc/sys/net/ipv6/conf/%[1]s/disable_ipv6; fi", name)},
		{"ip", "link", "set", "dev", name, "up"},
	}
}

func bridgeDeleteCommand(name string) []string {
	return []string{"ip", "link", "del", "dev", name}
}

// forwardAcceptCommands renders the rule that accepts frames bridged within the bridge, for
// "iptables" or "ip6tables", and the command that removes it again.
func forwardAcceptCommands(family, name string) (add, del []string) {
	rule := []string{"FORWARD", "-i", name, "-o", name, "-j", "ACCEPT"}
	add = append([]string{family, "-w", "-I"}, rule...)
	del = append([]string{family, "-w", "-D"}, rule...)
	return add, del
}

// BridgeState is what a node reports about one link that should be a bridge.
type BridgeState struct {
	Exists bool
	// Kind is the link type as sysfs names it ("bridge", "vlan", ...; "" for a plain device
	// or a veth).
	Kind string
	Up   bool
	// STP and VLANFiltering report the bridge's settings.
	STP, VLANFiltering bool
	// Ports are the links attached to the bridge.
	Ports []string
}

// inspectScript prints, from sysfs, what InspectBridge reports about one link. It needs only
// sh, cat and ls, so it runs on a kind node and in a busybox pod on a host's network alike,
// and it changes nothing.
func inspectScript(name string) string {
	return fmt.Sprintf(`d=/sys/class/net/%s
if [ ! -e "$d" ]; then echo exists=0; exit 0; fi
echo exists=1
if [ -d "$d/bridge" ]; then echo kind=bridge; else echo "kind=$(grep '^DEVTYPE=' "$d/uevent" | cut -d= -f2)"; fi
echo "flags=$(cat "$d/flags")"
echo "stp=$(cat "$d/bridge/stp_state" 2>/dev/null)"
echo "vlan_filtering=$(cat "$d/bridge/vlan_filtering" 2>/dev/null)"
echo "ports=$(ls "$d/brif" 2>/dev/null | tr '\n' ' ')"
`, name)
}

// InspectBridge reads the state of the link called name on node, without changing anything.
func InspectBridge(ctx context.Context, n nodeexec.Runner, node, name string) (BridgeState, error) {
	if err := ValidateBridgeName(name); err != nil {
		return BridgeState{}, fmt.Errorf("inspect bridge on node %s: %w", node, err)
	}
	out, err := n.NodeExec(ctx, node, "sh", "-c", inspectScript(name))
	if err != nil {
		return BridgeState{}, fmt.Errorf("inspect bridge %s on node %s: %w", name, node, err)
	}
	st, err := parseBridgeState(string(out))
	if err != nil {
		return BridgeState{}, fmt.Errorf("inspect bridge %s on node %s: %w", name, node, err)
	}
	return st, nil
}

func parseBridgeState(out string) (BridgeState, error) {
	var st BridgeState
	seen := false
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "exists":
			seen = true
			st.Exists = v == "1"
		case "kind":
			st.Kind = v
		case "flags":
			// IFF_UP is bit 0 of the interface flags.
			f, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
			if err != nil {
				return st, fmt.Errorf("parse interface flags %q: %w", v, err)
			}
			st.Up = f&1 != 0
		case "stp":
			st.STP = v != "" && v != "0"
		case "vlan_filtering":
			st.VLANFiltering = v == "1"
		case "ports":
			st.Ports = strings.Fields(v)
		}
	}
	if !seen {
		return st, fmt.Errorf("unexpected output %q", out)
	}
	return st, nil
}

// BridgeExists is the preflight check for clusters whose bridge is someone else's (a vendor's
// cluster): it reports whether a bridge called name exists on node and refuses a link of that
// name that is not a bridge. It changes nothing.
func BridgeExists(ctx context.Context, n nodeexec.Runner, node, name string) (bool, error) {
	if err := ValidateBridgeName(name); err != nil {
		return false, fmt.Errorf("check bridge on node %s: %w", node, err)
	}
	st, err := InspectBridge(ctx, n, node, name)
	if err != nil {
		return false, err
	}
	if st.Exists && st.Kind != "bridge" {
		return false, fmt.Errorf("check bridge %s on node %s: a %s link of that name exists, not a bridge", name, node, kindOrUnknown(st.Kind))
	}
	return st.Exists, nil
}

// BridgeNFCallIPTables is the node setting (br_netfilter's) that hands frames bridged on the
// node to iptables when it is 1.
const BridgeNFCallIPTables = "/proc/sys/net/bridge/bridge-nf-call-iptables"

// netfilterState is how a node's br_netfilter and FORWARD chains treat bridged frames.
type netfilterState struct {
	// callIPTables and callIP6Tables are the bridge-nf-call-* sysctls: "1", "0", or "" when
	// br_netfilter is not loaded.
	callIPTables, callIP6Tables string
	// forwardPolicy and forward6Policy are the FORWARD chains' policies ("" when unknown,
	// "missing" without the iptables command).
	forwardPolicy, forward6Policy string
	// forwardRules are the iptables FORWARD chain's rules as iptables -S prints them.
	forwardRules []string
}

// netfilterScript prints the sysctls and the FORWARD chains in a form parseNetfilter reads; it
// always succeeds, because an absent br_netfilter or iptables is an answer, not a failure.
const netfilterScript = `for f in bridge-nf-call-iptables bridge-nf-call-ip6tables; do
  printf '%s=%s\n' "$f" "$(cat /proc/sys/net/bridge/$f 2>/dev/null)"
done
for t in iptables ip6tables; do
  if command -v $t >/dev/null 2>&1; then p=$($t -w -S FORWARD 2>/dev/null | grep '^-P FORWARD ' | head -n 1); else p=missing; fi
  printf '%s-forward=%s\n' "$t" "$p"
done
if command -v iptables >/dev/null 2>&1; then iptables -w -S FORWARD 2>/dev/null | grep '^-A FORWARD ' | sed 's/^/iptables-rule=/'; fi
true`

func readNetfilter(ctx context.Context, n nodeexec.Runner, node string) (netfilterState, error) {
	out, err := n.NodeExec(ctx, node, "sh", "-c", netfilterScript)
	if err != nil {
		return netfilterState{}, fmt.Errorf("read br_netfilter settings on node %s: %w", node, err)
	}
	return parseNetfilter(string(out)), nil
}

func parseNetfilter(out string) netfilterState {
	var st netfilterState
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "bridge-nf-call-iptables":
			st.callIPTables = v
		case "bridge-nf-call-ip6tables":
			st.callIP6Tables = v
		case "iptables-forward":
			st.forwardPolicy = strings.TrimSpace(strings.TrimPrefix(v, "-P FORWARD"))
		case "ip6tables-forward":
			st.forward6Policy = strings.TrimSpace(strings.TrimPrefix(v, "-P FORWARD"))
		case "iptables-rule":
			st.forwardRules = append(st.forwardRules, v)
		}
	}
	return st
}

// filteringFamilies lists the iptables commands whose FORWARD chain sees bridged frames.
func (s netfilterState) filteringFamilies() []string {
	var fams []string
	if s.callIPTables == "1" {
		fams = append(fams, "iptables")
	}
	if s.callIP6Tables == "1" {
		fams = append(fams, "ip6tables")
	}
	return fams
}

// finding turns the state into a plain-language preflight result for the bridge.
func (s netfilterState) finding(node, bridge string) Finding {
	f := Finding{Check: "br_netfilter", Node: node}
	if s.callIPTables == "" && s.callIP6Tables == "" {
		f.Message = fmt.Sprintf("br_netfilter is not loaded, so frames bridged on %s bypass iptables", bridge)
		return f
	}
	if len(s.filteringFamilies()) == 0 {
		f.Message = fmt.Sprintf("net.bridge.bridge-nf-call-iptables=%s and bridge-nf-call-ip6tables=%s, so frames bridged on %s bypass iptables",
			s.callIPTables, s.callIP6Tables, bridge)
		return f
	}
	var dropping, unknown []string
	check := func(call, policy, family string) {
		switch {
		case call != "1" || policy == "ACCEPT":
		case policy == "missing" || policy == "":
			unknown = append(unknown, family)
		default:
			dropping = append(dropping, family+" FORWARD policy "+policy)
		}
	}
	check(s.callIPTables, s.forwardPolicy, "iptables")
	check(s.callIP6Tables, s.forward6Policy, "ip6tables")
	switch {
	case len(dropping) > 0:
		f.Problem = true
		f.Message = fmt.Sprintf("br_netfilter hands frames bridged on %s to iptables and the %s: the VM's DHCP and the PXE transfers can be dropped silently; "+
			"set net.bridge.bridge-nf-call-iptables=0 (and ...-ip6tables=0) on the node, or accept them with `iptables -I FORWARD -i %s -o %s -j ACCEPT`",
			bridge, strings.Join(dropping, " and the "), bridge, bridge)
	case len(unknown) > 0:
		f.Message = fmt.Sprintf("br_netfilter hands frames bridged on %s to %s, whose FORWARD policy could not be read here; "+
			"if it is DROP, the VM's DHCP and the PXE transfers will be dropped silently", bridge, strings.Join(unknown, " and "))
	default:
		f.Message = fmt.Sprintf("br_netfilter hands frames bridged on %s to iptables, whose FORWARD policy is ACCEPT", bridge)
	}
	return f
}

// CheckBridgeNetfilter is the preflight check of REFERENCE §2.7 for a bridge on node: whether
// br_netfilter hands its frames to an iptables FORWARD chain that may drop them. It changes
// nothing.
func CheckBridgeNetfilter(ctx context.Context, n nodeexec.Runner, node, bridge string) (Finding, error) {
	st, err := readNetfilter(ctx, n, node)
	if err != nil {
		return Finding{}, err
	}
	return st.finding(node, bridge), nil
}

// BridgedDHCPDrops says what on node drops the DHCP a guest sends across bridge: with
// br_netfilter handing bridged frames to iptables (BridgeNFCallIPTables is 1), the iptables
// FORWARD rules that drop or reject UDP to port 67, or a FORWARD policy of DROP. It returns ""
// when nothing there drops it. n must run the node's own iptables (nodeexec's
// WithNodeMountNamespace); it reads the same settings as the preflight's CheckBridgeNetfilter
// and changes nothing.
func BridgedDHCPDrops(ctx context.Context, n nodeexec.Runner, node, bridge string) (string, error) {
	st, err := readNetfilter(ctx, n, node)
	if err != nil {
		return "", err
	}
	if st.callIPTables != "1" {
		return "", nil
	}
	if st.forwardPolicy == "missing" {
		return "", fmt.Errorf("node %s: %s is 1, but its iptables FORWARD chain cannot be read: no iptables command where the probe runs", node, BridgeNFCallIPTables)
	}
	var drops []string
	for _, r := range st.forwardRules {
		if dropsDHCP(r) {
			drops = append(drops, "`"+r+"`")
		}
	}
	head := fmt.Sprintf("on node %s, %s is 1: frames bridged on %s go through iptables' FORWARD chain", node, BridgeNFCallIPTables, bridge)
	switch {
	case len(drops) > 0:
		return fmt.Sprintf("%s, where %s drops DHCP (UDP port 67)", head, strings.Join(drops, " and ")), nil
	case st.forwardPolicy == "DROP":
		return fmt.Sprintf("%s, whose policy DROP drops DHCP unless a rule accepts it", head), nil
	}
	return "", nil
}

// dropsDHCP reports whether an iptables -S rule drops or rejects UDP to port 67 (DHCP's server
// port): its target is DROP or REJECT, and neither its protocol nor its destination ports, if
// it names them, leave a DHCP request out. Matches it cannot judge (addresses, interfaces)
// count as matching: the rule may drop DHCP.
func dropsDHCP(rule string) bool {
	f := strings.Fields(rule)
	value := func(flags ...string) (v string, negated, ok bool) {
		for i, w := range f {
			if slices.Contains(flags, w) && i+1 < len(f) {
				return f[i+1], i > 0 && f[i-1] == "!", true
			}
		}
		return "", false, false
	}
	if target, _, _ := value("-j"); target != "DROP" && target != "REJECT" {
		return false
	}
	if proto, negated, ok := value("-p"); ok && (negated || (proto != "udp" && proto != "17" && proto != "all")) {
		return false
	}
	if ports, negated, ok := value("--dport", "--dports", "--destination-port"); ok && (negated || !coversPort(ports, 67)) {
		return false
	}
	return true
}

// coversPort reports whether an iptables port list ("67", "67:68", "53,67") holds port.
func coversPort(list string, port int) bool {
	for _, p := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(p, ":")
		if !isRange {
			hi = lo
		}
		if lo == "bootps" {
			lo = "67"
		}
		if hi == "bootps" {
			hi = "67"
		}
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		if errA == nil && errB == nil && a <= port && port <= b {
			return true
		}
	}
	return false
}
