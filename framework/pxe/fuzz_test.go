package pxe

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzDHCPHandler feeds raw packets through the parser and the responder:
// neither may panic, every outcome must be recorded, and every reply must
// survive the wire and have somewhere to go.
func FuzzDHCPHandler(f *testing.F) {
	d := testResponder(f)
	for _, m := range []*dhcpv4.DHCPv4{
		discover(f, testMAC, ipxeClass(), arch(0)),
		request(f, testMAC, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))),
	} {
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		out := d.respond(req)
		if len(out.events) == 0 {
			t.Fatalf("no event recorded for %s", req.Summary())
		}
		for _, ev := range out.events {
			if ev.Kind == "" || ev.Protocol != ProtoDHCP {
				t.Fatalf("malformed event %+v", ev)
			}
		}
		if out.reply == nil {
			return
		}
		if _, ok := d.byMAC[macKey(req.ClientHWAddr)]; !ok {
			t.Fatalf("answered MAC %s that has no reservation", req.ClientHWAddr)
		}
		back, err := dhcpv4.FromBytes(out.reply.ToBytes())
		if err != nil {
			t.Fatalf("reply does not parse back: %v", err)
		}
		if back.OpCode != dhcpv4.OpcodeBootReply || back.TransactionID != req.TransactionID {
			t.Fatalf("reply %s does not answer %s", back.Summary(), req.Summary())
		}
		if dst := replyDestination(req, out.reply); dst == nil || dst.IP.To4() == nil {
			t.Fatalf("reply destination %v", dst)
		}
	})
}

// FuzzResolvePath checks that path resolution only ever returns regular
// files inside the root, whatever the name.
func FuzzResolvePath(f *testing.F) {
	root, _ := linkedRoot(f)
	for _, s := range []string{"vmlinuz", "../secret", "/etc/passwd", "link-outside", "sub/link-up", "link-dir-out/x", "sub", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := resolvePath(root, name)
		if err != nil {
			return
		}
		if !within(root, got) || got == root {
			t.Fatalf("resolvePath(%q) = %q, outside root %q", name, got, root)
		}
		if strings.HasPrefix(name, "/") || strings.Contains("/"+name+"/", "/../") {
			t.Fatalf("resolvePath(%q) accepted an absolute or parent path: %q", name, got)
		}
		fi, err := os.Lstat(got)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("resolvePath(%q) = %q, not a regular file (%v)", name, got, err)
		}
		if resolved, err := filepath.EvalSymlinks(got); err != nil || resolved != got {
			t.Fatalf("resolvePath(%q) = %q, not fully resolved (%q, %v)", name, got, resolved, err)
		}
	})
}
