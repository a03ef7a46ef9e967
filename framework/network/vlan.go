package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
)

// VLANSupported reports whether node's kernel can carry 802.1Q VLANs the way the bridge CNI
// plugin needs them: a bridge with VLAN filtering, and VLAN devices. It creates a throwaway
// bridge (pxecv<random>) in the node's network namespace and deletes it again, so n must be
// allowed to change links there (a nodeexec.PodRunner needs NET_ADMIN). When VLANs are unsupported,
// reason says what the kernel lacks, quoting a failed command with the kernel's exact answer,
// for a spec to skip with; err is only for a node that could not be asked, or that refused to
// let the probe create its bridge.
func VLANSupported(ctx context.Context, n nodeexec.Runner, node string) (supported bool, reason string, err error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, "", fmt.Errorf("check VLAN support on node %s: %w", node, err)
	}
	name := "pxecv" + hex.EncodeToString(b[:])
	out, err := n.NodeExec(ctx, node, "sh", "-c", vlanProbeScript(name))
	if err != nil {
		return false, "", fmt.Errorf("check VLAN support on node %s: %w", node, err)
	}
	ok, why, err := parseVLANProbe(string(out))
	if err != nil {
		return false, "", fmt.Errorf("check VLAN support on node %s: %w", node, err)
	}
	if !ok {
		return false, fmt.Sprintf("node %s: %s", node, why), nil
	}
	return true, "", nil
}

// vlanProbeScript tries, on a throwaway bridge, the two kernel features a VLAN-tagged bridge
// attachment needs, prints each step with its output and exit status, and always removes the
// bridge (a VLAN device on it goes with it). It runs with iproute2 and with busybox alike:
// busybox's ip ignores "vlan_filtering 1" silently, so bridge VLAN filtering is read from the
// bridge's sysfs attribute, which the kernel has only when built with it.
func vlanProbeScript(name string) string {
	attr := "/sys/class/net/" + name + "/bridge/vlan_filtering"
	steps := []struct{ label, cmd string }{
		{"bridge", "ip link add name " + name + " type bridge"},
		{"filtering", "test -e " + attr},
		{"vlan", "ip link add link " + name + " name " + name + ".7 type vlan id 7"},
	}
	var sb strings.Builder
	sb.WriteString("rc=0\n")
	for _, s := range steps {
		// A step runs only while every earlier step worked.
		fmt.Fprintf(&sb, "if [ $rc -eq 0 ]; then echo 'step: %s'; echo 'cmd: %s'; out=$(%s 2>&1); rc=$?; echo \"out: $out\"; echo \"rc: $rc\"; fi\n", s.label, s.cmd, s.cmd)
	}
	fmt.Fprintf(&sb, "ip link del dev %s >/dev/null 2>&1\ntrue\n", name)
	return sb.String()
}

// bridgeName is the throwaway bridge's name in a probe step's command.
func bridgeName(cmd string) string {
	_, rest, _ := strings.Cut(cmd, "/sys/class/net/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// errVLANProbeBridge is the probe's own bridge failing: a refusal to ask, not an answer.
var errVLANProbeBridge = errors.New("the probe could not create its throwaway bridge")

// parseVLANProbe reads the probe's output: every step passed, or what the kernel lacks, from
// the first failing step.
func parseVLANProbe(out string) (ok bool, reason string, err error) {
	var step, cmd, output string
	steps := 0
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "step: "):
			step = strings.TrimPrefix(line, "step: ")
		case strings.HasPrefix(line, "cmd: "):
			cmd = strings.TrimPrefix(line, "cmd: ")
		case strings.HasPrefix(line, "out: "):
			output = strings.TrimPrefix(line, "out: ")
		case strings.HasPrefix(line, "rc: "):
			steps++
			rc := strings.TrimPrefix(line, "rc: ")
			if rc == "0" {
				output = ""
				continue
			}
			if output == "" {
				output = "exit status " + rc
			}
			switch step {
			case "bridge":
				return false, "", fmt.Errorf("%w: `%s` failed: %s", errVLANProbeBridge, cmd, output)
			case "filtering":
				attr := strings.Replace(strings.TrimPrefix(cmd, "test -e "), "/net/"+bridgeName(cmd)+"/", "/net/<bridge>/", 1)
				return false, "802.1Q VLANs are not supported: the kernel has no bridge VLAN filtering (a new bridge has no " + attr + ")", nil
			}
			return false, fmt.Sprintf("802.1Q VLANs are not supported: `%s` failed: %s", cmd, output), nil
		}
	}
	if steps != 3 {
		return false, "", fmt.Errorf("unexpected probe output %q", out)
	}
	return true, "", nil
}
