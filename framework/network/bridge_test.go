package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// fakeNode is a nodeexec.Runner that records each command and answers from a script of
// responses keyed by the command's first words.
type fakeNode struct {
	ran     [][]string
	answers map[string]string // prefix of the joined argv -> stdout
	fail    map[string]error  // prefix of the joined argv -> error
}

func (f *fakeNode) NodeExec(_ context.Context, node string, argv ...string) ([]byte, error) {
	f.ran = append(f.ran, argv)
	line := strings.Join(argv, " ")
	for p, err := range f.fail {
		if strings.HasPrefix(line, p) {
			return nil, err
		}
	}
	for p, out := range f.answers {
		if strings.HasPrefix(line, p) {
			return []byte(out), nil
		}
	}
	return nil, nil
}

const (
	inspectCmd    = "sh -c d=/sys/class/net/"
	noLinks       = "exists=0\n"
	existingBr1   = "exists=1\nkind=bridge\nflags=0x1003\nstp=1\nvlan_filtering=\nports=veth1 \n"
	br1IsAVlan    = "exists=1\nkind=vlan\nflags=0x1003\nstp=\nvlan_filtering=\nports=\n"
	nfFiltered    = "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=1\niptables-forward=-P FORWARD DROP\nip6tables-forward=-P FORWARD ACCEPT\n"
	nfNotFiltered = "bridge-nf-call-iptables=0\nbridge-nf-call-ip6tables=0\niptables-forward=-P FORWARD DROP\nip6tables-forward=-P FORWARD DROP\n"
)

func TestEnsureBridgeCreatesAbsentBridgeAndDeleteUndoesIt(t *testing.T) {
	n := &fakeNode{answers: map[string]string{inspectCmd: noLinks, "sh -c for f in": nfFiltered}}
	b, err := EnsureBridge(context.Background(), n, "kind-worker", "br1")
	if err != nil {
		t.Fatalf("EnsureBridge: %v", err)
	}
	if !b.Created {
		t.Fatalf("bridge not reported as created")
	}
	want := [][]string{
		{"sh", "-c", inspectScript("br1")},
		{"ip", "link", "add", "name", "br1", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"sh", "-c", "if [ -e /proc/sys/net/ipv6/conf/br1 ]; then echo 1 > /proc/sys/net/ipv6/conf/br1/disable_ipv6; fi"},
		{"ip", "link", "set", "dev", "br1", "up"},
		{"sh", "-c", netfilterScript},
		{"iptables", "-w", "-I", "FORWARD", "-i", "br1", "-o", "br1", "-j", "ACCEPT"},
		{"ip6tables", "-w", "-I", "FORWARD", "-i", "br1", "-o", "br1", "-j", "ACCEPT"},
	}
	if !reflect.DeepEqual(n.ran, want) {
		t.Fatalf("commands\n got %q\nwant %q", n.ran, want)
	}
	if len(b.Findings) != 1 || b.Findings[0].Problem {
		t.Errorf("findings %v, want one non-problem br_netfilter finding (rules were added)", b.Findings)
	}

	n.ran = nil
	if err := b.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantUndo := [][]string{
		{"ip6tables", "-w", "-D", "FORWARD", "-i", "br1", "-o", "br1", "-j", "ACCEPT"},
		{"iptables", "-w", "-D", "FORWARD", "-i", "br1", "-o", "br1", "-j", "ACCEPT"},
		{"ip", "link", "del", "dev", "br1"},
	}
	if !reflect.DeepEqual(n.ran, wantUndo) {
		t.Fatalf("undo commands\n got %q\nwant %q", n.ran, wantUndo)
	}
	n.ran = nil
	if err := b.Delete(context.Background()); err != nil || len(n.ran) != 0 {
		t.Errorf("second Delete ran %q, err %v; want nothing", n.ran, err)
	}
}

func TestEnsureBridgeAddsNoRulesWhenBridgedFramesBypassIptables(t *testing.T) {
	n := &fakeNode{answers: map[string]string{inspectCmd: noLinks, "sh -c for f in": nfNotFiltered}}
	b, err := EnsureBridge(context.Background(), n, "kind-worker", "br1")
	if err != nil {
		t.Fatalf("EnsureBridge: %v", err)
	}
	for _, c := range n.ran {
		if strings.HasSuffix(c[0], "tables") {
			t.Errorf("ran %q although bridged frames bypass iptables", c)
		}
	}
	n.ran = nil
	if err := b.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"ip", "link", "del", "dev", "br1"}}; !reflect.DeepEqual(n.ran, want) {
		t.Errorf("undo commands %q, want %q", n.ran, want)
	}
}

func TestEnsureBridgeLeavesExistingBridgeAlone(t *testing.T) {
	n := &fakeNode{answers: map[string]string{inspectCmd: existingBr1, "sh -c for f in": nfFiltered}}
	b, err := EnsureBridge(context.Background(), n, "node-a", "br1")
	if err != nil {
		t.Fatalf("EnsureBridge: %v", err)
	}
	if b.Created {
		t.Errorf("an existing bridge was reported as created")
	}
	for _, c := range n.ran {
		if c[0] != "sh" {
			t.Errorf("ran %q on a bridge that is not ours", c)
		}
	}
	if len(b.Findings) != 1 || !b.Findings[0].Problem || !strings.Contains(b.Findings[0].Message, "iptables FORWARD policy DROP") {
		t.Errorf("findings %v, want the DROP policy reported as a problem", b.Findings)
	}
	n.ran = nil
	if err := b.Delete(context.Background()); err != nil || len(n.ran) != 0 {
		t.Errorf("Delete of a bridge we did not create ran %q (err %v)", n.ran, err)
	}
}

func TestEnsureBridgeRefusesLinkThatIsNotABridge(t *testing.T) {
	n := &fakeNode{answers: map[string]string{inspectCmd: br1IsAVlan}}
	b, err := EnsureBridge(context.Background(), n, "node-a", "br1")
	if err == nil || !strings.Contains(err.Error(), "vlan link") {
		t.Fatalf("EnsureBridge = %v, %v; want a refusal naming the veth", b, err)
	}
	if ok, err := BridgeExists(context.Background(), n, "node-a", "br1"); err == nil {
		t.Errorf("BridgeExists = %v with no error for a veth", ok)
	}
}

func TestEnsureBridgeReturnsWhatItCreatedWhenSetupFails(t *testing.T) {
	n := &fakeNode{
		answers: map[string]string{inspectCmd: noLinks},
		fail:    map[string]error{"ip link set dev br1 up": errors.New("boom")},
	}
	b, err := EnsureBridge(context.Background(), n, "node-a", "br1")
	if err == nil {
		t.Fatal("EnsureBridge succeeded although bringing the bridge up failed")
	}
	if b == nil || !b.Created {
		t.Fatalf("EnsureBridge returned %v; want the created bridge so the caller can delete it", b)
	}
	n.ran = nil
	if err := b.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"ip", "link", "del", "dev", "br1"}}; !reflect.DeepEqual(n.ran, want) {
		t.Errorf("undo commands %q, want %q", n.ran, want)
	}
}

func TestParseBridgeStateReadsSettingsAndPorts(t *testing.T) {
	st, err := parseBridgeState(existingBr1)
	if err != nil {
		t.Fatal(err)
	}
	want := BridgeState{Exists: true, Kind: "bridge", Up: true, STP: true, Ports: []string{"veth1"}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("state %+v, want %+v", st, want)
	}
	st, err = parseBridgeState(noLinks)
	if err != nil || st.Exists {
		t.Errorf("absent bridge parsed as %+v, %v", st, err)
	}
}

func TestNetfilterFindingNamesWhatDropsBridgedFrames(t *testing.T) {
	cases := []struct {
		name    string
		out     string
		problem bool
		mention string
	}{
		{"module not loaded", "bridge-nf-call-iptables=\nbridge-nf-call-ip6tables=\niptables-forward=\n", false, "not loaded"},
		{"sysctls off", nfNotFiltered, false, "bypass iptables"},
		{"policy accept", "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=1\niptables-forward=-P FORWARD ACCEPT\nip6tables-forward=-P FORWARD ACCEPT\n", false, "ACCEPT"},
		{"policy drop", nfFiltered, true, "iptables FORWARD policy DROP"},
		{"iptables missing", "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=0\niptables-forward=missing\n", false, "could not be read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := parseNetfilter(tc.out).finding("node-a", "br1")
			if f.Problem != tc.problem || !strings.Contains(f.Message, tc.mention) {
				t.Errorf("finding %v; want problem=%v mentioning %q", f, tc.problem, tc.mention)
			}
		})
	}
}

// netnsNode is a nodeexec.Runner whose one "node" is a network namespace on this machine, so the
// node commands run against the real kernel.
type netnsNode struct{ ns string }

func (r netnsNode) NodeExec(ctx context.Context, _ string, argv ...string) ([]byte, error) {
	return command.Output(ctx, exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.ns}, argv...)...))
}

// newNetns makes a throwaway network namespace, or skips (fails under CI=true) when this
// machine cannot.
func newNetns(t *testing.T) netnsNode {
	t.Helper()
	need := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run: %s", why)
		}
		t.Skipf("skipped: %s", why)
	}
	if os.Geteuid() != 0 {
		need("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		need("needs iproute2's ip")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	ns := "pxec-nettest-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		need(fmt.Sprintf("ip netns add: %v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	return netnsNode{ns: ns}
}

func TestEnsureBridgeOnThisKernel(t *testing.T) {
	n := newNetns(t)
	ctx := context.Background()
	b, err := EnsureBridge(ctx, n, "local", "pxecbr0")
	if b != nil {
		t.Cleanup(func() { _ = b.Delete(ctx) })
	}
	if err != nil {
		t.Fatalf("EnsureBridge: %v", err)
	}
	nf, err := readNetfilter(ctx, n, "local")
	if err != nil {
		t.Fatal(err)
	}
	acceptRule := []string{"iptables", "-w", "-C", "FORWARD", "-i", "pxecbr0", "-o", "pxecbr0", "-j", "ACCEPT"}
	if nf.callIPTables == "1" {
		if _, err := n.NodeExec(ctx, "local", acceptRule...); err != nil {
			t.Errorf("bridged frames go through iptables but no ACCEPT rule was added: %v", err)
		}
	}
	t.Logf("findings: %v", b.Findings)
	st, err := InspectBridge(ctx, n, "local", "pxecbr0")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || st.Kind != "bridge" || !st.Up || st.STP {
		t.Errorf("bridge state %+v, want an up bridge with STP off", st)
	}
	if out, _ := n.NodeExec(ctx, "local", "ip", "-o", "addr", "show", "dev", "pxecbr0"); len(out) != 0 {
		t.Errorf("bridge has addresses: %s", out)
	}
	if ok, err := BridgeExists(ctx, n, "local", "pxecbr0"); !ok || err != nil {
		t.Errorf("BridgeExists = %v, %v", ok, err)
	}

	again, err := EnsureBridge(ctx, n, "local", "pxecbr0")
	if err != nil || again.Created {
		t.Fatalf("second EnsureBridge = created %v, %v; want the existing bridge used", again.Created, err)
	}
	if err := again.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := BridgeExists(ctx, n, "local", "pxecbr0"); !ok {
		t.Fatalf("deleting the handle of a bridge it did not create removed the bridge")
	}
	if err := b.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := BridgeExists(ctx, n, "local", "pxecbr0"); ok {
		t.Errorf("bridge still exists after Delete")
	}
	if _, err := n.NodeExec(ctx, "local", acceptRule...); err == nil {
		t.Errorf("ACCEPT rule still there after Delete")
	}
}

func TestVLANSupportedQuotesTheKernel(t *testing.T) {
	n := newNetns(t)
	ok, reason, err := VLANSupported(context.Background(), n, "local")
	if err != nil {
		t.Fatalf("VLANSupported: %v", err)
	}
	if ok {
		if reason != "" {
			t.Errorf("supported, but with reason %q", reason)
		}
		return
	}
	// This kernel refuses; the reason must say what it lacks, in the kernel's own terms.
	if !strings.Contains(reason, "802.1Q VLANs are not supported: ") ||
		!(strings.Contains(reason, "no bridge VLAN filtering (a new bridge has no /sys/class/net/<bridge>/bridge/vlan_filtering)") || strings.Contains(reason, "failed: ")) ||
		strings.HasSuffix(reason, "failed: ") {
		t.Errorf("reason %q does not say what the kernel lacks", reason)
	}
	t.Logf("VLANs unsupported here: %s", reason)
	out, _ := n.NodeExec(context.Background(), "local", "ip", "-o", "link", "show")
	if strings.Contains(string(out), "pxecv") {
		t.Errorf("probe left links behind: %s", out)
	}
}

func TestParseVLANProbe(t *testing.T) {
	const (
		bridgeOK    = "step: bridge\ncmd: ip link add name x type bridge\nout: \nrc: 0\n"
		filteringOK = "step: filtering\ncmd: test -e /sys/class/net/x/bridge/vlan_filtering\nout: \nrc: 0\n"
	)
	cases := []struct {
		name, out string
		ok        bool
		mention   string
		err       string
	}{
		{"every step passes", bridgeOK + filteringOK + "step: vlan\ncmd: ip link add link x name x.7 type vlan id 7\nout: \nrc: 0\n", true, "", ""},
		{"no filtering in the kernel", bridgeOK + "step: filtering\ncmd: test -e /sys/class/net/x/bridge/vlan_filtering\nout: \nrc: 1\n", false,
			"802.1Q VLANs are not supported: the kernel has no bridge VLAN filtering (a new bridge has no /sys/class/net/<bridge>/bridge/vlan_filtering)", ""},
		{"vlan device refused", bridgeOK + filteringOK + "step: vlan\ncmd: ip link add link x name x.7 type vlan id 7\nout: RTNETLINK answers: Operation not supported\nrc: 2\n", false,
			"`ip link add link x name x.7 type vlan id 7` failed: RTNETLINK answers: Operation not supported", ""},
		{"no right to make the bridge", "step: bridge\ncmd: ip link add name x type bridge\nout: ip: RTNETLINK answers: Operation not permitted\nrc: 2\n", false, "",
			"could not create its throwaway bridge: `ip link add name x type bridge` failed: ip: RTNETLINK answers: Operation not permitted"},
		{"garbage", "sh: not found\n", false, "", "unexpected probe output"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason, err := parseVLANProbe(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("parseVLANProbe error = %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || !strings.Contains(reason, tc.mention) {
				t.Errorf("parseVLANProbe = %v, %q, %v; want %v mentioning %q", ok, reason, err, tc.ok, tc.mention)
			}
		})
	}
}

func TestDropsDHCPJudgesRulesByTargetProtocolAndPort(t *testing.T) {
	for rule, want := range map[string]bool{
		"-A FORWARD -p udp -m physdev --physdev-is-bridged -m udp --dport 67 -j DROP":          true,
		"-A FORWARD -p udp -m udp --dport 67:68 -j REJECT --reject-with icmp-port-unreachable": true,
		"-A FORWARD -p udp -m multiport --dports 53,67 -j DROP":                                true,
		"-A FORWARD -i br1 -j DROP":                                                                            true,
		"-A FORWARD -p udp -m udp --dport bootps -j DROP":                                                      true,
		"-A FORWARD -p udp -m udp --dport 67 -j ACCEPT":                                                        false,
		"-A FORWARD -p tcp -m tcp --dport 67 -j DROP":                                                          false,
		"-A FORWARD -p udp -m udp --dport 68 -j DROP":                                                          false,
		"-A FORWARD -p udp -m udp ! --dport 67 -j DROP":                                                        false,
		"-A FORWARD ! -p udp -j DROP":                                                                          false,
		"-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD":                      false,
		"-A FORWARD -d 10.96.0.0/16 -p tcp -m comment --comment \"pxec: x\" -j REJECT --reject-with tcp-reset": false,
	} {
		if got := dropsDHCP(rule); got != want {
			t.Errorf("dropsDHCP(%q) = %v, want %v", rule, got, want)
		}
	}
}

func TestBridgedDHCPDropsNamesTheSettingAndTheRule(t *testing.T) {
	const rule = "-A FORWARD -p udp -m physdev --physdev-is-bridged -m udp --dport 67 -j DROP"
	accept := "bridge-nf-call-iptables=1\nbridge-nf-call-ip6tables=1\niptables-forward=-P FORWARD ACCEPT\nip6tables-forward=-P FORWARD ACCEPT\n"
	for _, tc := range []struct {
		name, out, want, wantErr string
	}{
		{"a rule drops DHCP", accept + "iptables-rule=-A FORWARD -j KUBE-FORWARD\niptables-rule=" + rule + "\n",
			"on node n1, /proc/sys/net/bridge/bridge-nf-call-iptables is 1: frames bridged on br1 go through iptables' FORWARD chain, where `" + rule + "` drops DHCP (UDP port 67)", ""},
		{"policy DROP", nfFiltered, "whose policy DROP drops DHCP unless a rule accepts it", ""},
		{"nothing drops", accept + "iptables-rule=-A FORWARD -j KUBE-FORWARD\n", "", ""},
		{"bridged frames bypass iptables", nfNotFiltered + "iptables-rule=" + rule + "\n", "", ""},
		{"no iptables", "bridge-nf-call-iptables=1\niptables-forward=missing\n", "", "cannot be read: no iptables command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &fakeNode{answers: map[string]string{"sh -c for f in": tc.out}}
			got, err := BridgedDHCPDrops(context.Background(), n, "n1", "br1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("BridgedDHCPDrops = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestBridgedDHCPDropsFindsARuleOnThisKernel(t *testing.T) {
	n := newNetns(t)
	ctx := context.Background()
	if out, _ := n.NodeExec(ctx, "local", "cat", BridgeNFCallIPTables); strings.TrimSpace(string(out)) != "1" {
		t.Skipf("skipped: %s is %q here, so bridged frames bypass iptables", BridgeNFCallIPTables, out)
	}
	rule := []string{"FORWARD", "-m", "physdev", "--physdev-is-bridged", "-p", "udp", "--dport", "67", "-j", "DROP"}
	if _, err := n.NodeExec(ctx, "local", append([]string{"iptables", "-w", "-I"}, rule...)...); err != nil {
		t.Skipf("skipped: cannot add the rule here: %v", err)
	}
	got, err := BridgedDHCPDrops(ctx, n, "local", "br1")
	if err != nil || !strings.Contains(got, BridgeNFCallIPTables) || !strings.Contains(got, "--dport 67 -j DROP`") {
		t.Errorf("BridgedDHCPDrops = %q, %v; want the setting and the rule named", got, err)
	}
}
