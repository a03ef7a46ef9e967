package guestssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// run runs a setup command and fails the test with its command line and
// output.
func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// guestNetns makes a network namespace shaped like the guest: eth0 up with
// a DHCP-style address, eth1 (the PXE interface) down with none. It is
// deleted, with its links, when the test ends.
func guestNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		prereq.Missingf(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		prereq.Missingf(t, "iproute2 missing: %v", err)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ns := "pxec-gssh-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		prereq.Missingf(t, "ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "eth0", "type", "veth", "peer", "name", "pxecp0"},
		{"link", "set", "eth0", "address", "52:54:00:12:34:56"},
		{"link", "set", "pxecp0", "up"},
		{"link", "set", "eth0", "up"},
		{"addr", "add", "10.0.2.2/24", "brd", "+", "dev", "eth0"},
		{"link", "add", "eth1", "type", "veth", "peer", "name", "pxecp1"},
		{"link", "set", "eth1", "address", "de:00:00:00:00:de"},
	} {
		run(t, append([]string{"ip", "-n", ns}, args...)...)
	}
	return ns
}

func TestInterfacesReadsRealToolsOverSSH(t *testing.T) {
	ns := guestNetns(t)
	tools := map[string]string{"iproute2": ""}
	if bb, err := exec.LookPath("busybox"); err == nil {
		// busybox ip, found first in PATH, stands in for iproute2.
		dir := t.TempDir()
		if err := os.Symlink(bb, filepath.Join(dir, "ip")); err != nil {
			t.Fatal(err)
		}
		tools["busybox"] = dir
	} else {
		t.Run("busybox", func(t *testing.T) { prereq.Missingf(t, "busybox not in PATH: %v", err) })
	}
	for tool, pathDir := range tools {
		t.Run(tool, func(t *testing.T) {
			kp, err := NewKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			env := ""
			if pathDir != "" {
				env = `env PATH="` + pathDir + `:$PATH" `
			}
			srv := startServer(t, kp.Signer().PublicKey(), func(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
				return shHandler(ctx, "ip netns exec "+ns+" "+env+"sh -c "+shellQuote(cmd), stdout, stderr)
			})
			c := dialTest(t, srv, kp)
			ifs, err := c.Interfaces(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			eth1, ok := InterfaceByMAC(ifs, mac(t, "de:00:00:00:00:de"))
			if !ok || eth1.Name != "eth1" || eth1.Up || eth1.OperState != "down" || len(eth1.IPv4) != 0 || len(eth1.IPv6) != 0 ||
				slices.Contains(eth1.Flags, "UP") || eth1.MTU != 1500 {
				t.Errorf("eth1 = %+v, %v; want eth1 down, without addresses", eth1, ok)
			}
			eth0, ok := InterfaceByName(ifs, "eth0")
			if !ok || !eth0.Up || eth0.MAC.String() != "52:54:00:12:34:56" || !slices.Equal(eth0.IPv4, []netip.Prefix{netip.MustParsePrefix("10.0.2.2/24")}) {
				t.Errorf("eth0 = %+v, %v; want eth0 up with 10.0.2.2/24", eth0, ok)
			}
			if lo, ok := InterfaceByName(ifs, "lo"); !ok || !lo.Up || !slices.Contains(lo.IPv4, netip.MustParsePrefix("127.0.0.1/8")) {
				t.Errorf("lo = %+v, %v; want lo up with 127.0.0.1/8", lo, ok)
			}
			for _, ifc := range ifs {
				if ifc.OperState == "" {
					t.Errorf("%s has no operational state", ifc.Name)
				}
			}
		})
	}
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
