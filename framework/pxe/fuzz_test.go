package pxe

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// FuzzHTTPHandler sends arbitrary request lines, from arbitrary addresses,
// to either the server's own address or another one, through the HTTP
// handler: it may not panic, an error reply never quotes more than a few
// dozen bytes of input, every string an event keeps is bounded, scripts
// and files are answered only on ServerIP, and a MAC's boot nonce changes
// only when its own reserved address fetched its script there.
func FuzzHTTPHandler(f *testing.F) {
	// A server without sockets: the handler is all this target drives.
	cfg := loopbackConfig(f)
	st, err := validate(cfg)
	if err != nil {
		f.Fatal(err)
	}
	files, err := openFileRoot(st.Root)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { files.close() })
	srv := &Server{cfg: st, log: discardLogger(), files: files, baseURL: "http://127.0.0.1:8080"}
	h := srv.httpHandler()
	guest := cfg.Reservations[0].IP.String() + ":40000"
	for _, seed := range []struct {
		method, target, remote string
		onServerIP             bool
	}{
		{"GET", "/ipxe/" + testMAC.String(), guest, true},
		{"GET", "/ipxe/" + testMAC.String(), "127.0.0.1:40000", true},
		{"GET", "/ipxe/" + testMAC.String(), guest, false},
		{"HEAD", "/vmlinuz", guest, true},
		{"GET", "/events?mac=" + testMAC.String(), "10.0.0.1:1", false},
		{"GET", "/events?mac=zz&mac=", "[::1]:1", true},
		{"GET", "/%2e%2e/etc/passwd", guest, true},
		{"POST", "/ipxe/x", guest, true},
	} {
		f.Add(seed.method, seed.target, seed.remote, seed.onServerIP)
	}
	local := &net.TCPAddr{IP: net.IP(cfg.ServerIP.AsSlice()), Port: 8080}
	other := &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 8080}
	f.Fuzz(func(t *testing.T, method, target, remote string, onServerIP bool) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(method + " " + target + " HTTP/1.1\r\nHost: pxe\r\n\r\n")))
		if err != nil {
			return
		}
		req.RemoteAddr = remote
		to := other
		if onServerIP {
			to = local
		}
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, to))
		srv.events = newEventLog(discardLogger()) // this request's events only
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		path := req.URL.Path
		api := path == "/events" || path == "/healthz"
		if rec.Code >= 400 && rec.Body.Len() > 2*maxEchoBytes+100 {
			t.Fatalf("%s %q: error reply of %d bytes: %.100q", method, target, rec.Body.Len(), rec.Body.String())
		}
		if rec.Code < 300 && !onServerIP && !api {
			t.Fatalf("%s %q to another address answered %d", method, target, rec.Code)
		}
		for _, ev := range srv.events.list("") {
			for _, s := range []string{ev.MAC, ev.Remote, ev.Path, ev.Reason, ev.Detail, ev.Nonce} {
				if len(s) > maxFieldBytes+len(TruncationMark)+20 {
					t.Fatalf("%s %q: event keeps a %d-byte string", method, target, len(s))
				}
			}
			if ev.Kind == KindScript && ev.Nonce != "" {
				from, err := netip.ParseAddrPort(remote)
				res, ok := srv.cfg.byMAC[ev.MAC]
				if err != nil || !ok || from.Addr().Unmap() != res.IP || !onServerIP || ev.Status != http.StatusOK {
					t.Fatalf("%s %q from %q (on ServerIP: %v) handed out nonce %s for %s", method, target, remote, onServerIP, ev.Nonce, ev.MAC)
				}
			}
		}
	})
}

// FuzzTFTPPacket feeds raw datagrams to the TFTP handler of a running
// server, all from one client port (so each request ends the transfer
// before it): nothing may panic, and every request the parser accepts
// must name the file its packet carries.
func FuzzTFTPPacket(f *testing.F) {
	cfg := loopbackConfig(f)
	srv, err := Start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Stop(context.Background()) })
	// A TFTP side of its own, with no loop: the fuzzer is the only
	// goroutine that drives it, as the loop is for the server's.
	ts := newLooplessTFTPServer(f, srv)
	from := netip.MustParseAddrPort("127.0.0.1:9") // discard: answers go nowhere
	for _, seed := range [][]byte{
		[]byte("\x00\x01vmlinuz\x00octet\x00blksize\x001468\x00tsize\x000\x00"),
		[]byte("\x00\x01../etc/passwd\x00octet\x00"),
		[]byte("\x00\x02up.bin\x00octet\x00"),
		[]byte("\x00\x04\x00\x01"),
		[]byte("\x00\x05\x00\x00bye\x00"),
		[]byte("\x00\x01initrd.img\x00netascii\x00timeout\x00300\x00"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ts.now = time.Now()
		ts.handle(b, from, netip.Addr{})
		ts.flush()
		if len(b) < 2 {
			return
		}
		req, err := parseTFTPRequest(b[2:])
		if err == nil && !strings.HasPrefix(string(b[2:]), req.name+"\x00") {
			t.Fatalf("request %q parsed as name %q", b, req.name)
		}
	})
}
