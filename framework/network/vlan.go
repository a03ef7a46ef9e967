package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// VLANSupported reports whether node's kernel can carry 802.1Q VLANs the way the bridge CNI
// plugin needs them: a bridge with VLAN filtering, and VLAN devices. It creates a throwaway
// bridge (pxecv<random>) in the node's network namespace and deletes it again. When VLANs are
// unsupported, reason quotes the command that failed and the kernel's exact answer, for a
// spec to skip with; err is only for a node that could not be asked.
func VLANSupported(ctx context.Context, n NodeRunner, node string) (supported bool, reason string, err error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, "", fmt.Errorf("check VLAN support on node %s: %w", node, err)
	}
	name := "pxecv" + hex.EncodeToString(b[:])
	out, err := n.NodeExec(ctx, node, "sh", "-c", vlanProbeScript(name))
	if err != nil {
		return false, "", fmt.Errorf("check VLAN support on node %s: %w", node, err)
	}
	ok, why := parseVLANProbe(string(out))
	if !ok && why == "" {
		return false, "", fmt.Errorf("check VLAN support on node %s: unexpected probe output %q", node, out)
	}
	if !ok {
		return false, fmt.Sprintf("node %s: %s", node, why), nil
	}
	return true, "", nil
}

// vlanProbeScript tries, in a throwaway bridge, the two kernel features a VLAN-tagged bridge
// attachment needs, prints each command with its output and exit status, and always removes
// the bridge (a VLAN device on it goes with it).
func vlanProbeScript(name string) string {
	steps := [][]string{
		{"ip", "link", "add", "name", name, "type", "bridge", "vlan_filtering", "1"},
		{"ip", "link", "add", "link", name, "name", name + ".7", "type", "vlan", "id", "7"},
	}
	var sb strings.Builder
	sb.WriteString("rc=0\n")
	for _, s := range steps {
		cmd := strings.Join(s, " ")
		// A step runs only while every earlier step worked.
		fmt.Fprintf(&sb, "if [ $rc -eq 0 ]; then echo 'cmd: %s'; out=$(%s 2>&1); rc=$?; echo \"out: $out\"; echo \"rc: $rc\"; fi\n", cmd, cmd)
	}
	fmt.Fprintf(&sb, "ip link del dev %s >/dev/null 2>&1\ntrue\n", name)
	return sb.String()
}

// parseVLANProbe reads the probe's output: every step passed, or the first failing command
// and what the kernel said.
func parseVLANProbe(out string) (ok bool, reason string) {
	var cmd, output string
	steps := 0
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "cmd: "):
			cmd = strings.TrimPrefix(line, "cmd: ")
		case strings.HasPrefix(line, "out: "):
			output = strings.TrimPrefix(line, "out: ")
		case strings.HasPrefix(line, "rc: "):
			steps++
			if rc := strings.TrimPrefix(line, "rc: "); rc != "0" {
				if output == "" {
					output = "exit status " + rc
				}
				return false, fmt.Sprintf("802.1Q VLANs are not supported: `%s` failed: %s", cmd, output)
			}
			output = ""
		}
	}
	return steps == 2, ""
}
