package pxe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// netnsLab is a server namespace and a client namespace joined by a veth pair.
type netnsLab struct {
	serverNS, clientNS string // names under /run/netns
	serverIf, clientIf string
}

func (l netnsLab) nsPath(name string) string { return filepath.Join("/run/netns", name) }

// ipCmd runs ip(8) and fails the test with the exact command line and output.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("run %q: %v\n%s", "ip "+strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetnsLab builds the lab and removes it at cleanup. Everything is
// created inside the two namespaces; deleting them deletes the veths.
func newNetnsLab(t *testing.T) netnsLab {
	t.Helper()
	if os.Geteuid() != 0 {
		prereq.Missingf(t, "needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		prereq.Missingf(t, "needs ip(8) from iproute2: %v", err)
	}
	var b [3]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	lab := netnsLab{
		serverNS: "pxec-t-srv-" + id,
		clientNS: "pxec-t-cli-" + id,
		serverIf: "pxecs" + id,
		clientIf: "pxecc" + id,
	}
	for _, ns := range []string{lab.serverNS, lab.clientNS} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() {
			out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput()
			if err != nil {
				t.Errorf("run %q: %v\n%s", "ip netns del "+ns, err, out)
			}
		})
	}
	ipCmd(t, "-n", lab.serverNS, "link", "add", lab.serverIf, "type", "veth", "peer", "name", lab.clientIf, "netns", lab.clientNS)
	ipCmd(t, "-n", lab.clientNS, "link", "set", lab.clientIf, "address", testMAC.String())
	// The client answers nothing on its own: no duplicate address detection
	// delay before our router solicitation, and no kernel solicitations that
	// could trigger the advertisement in its place.
	writeSysctl(t, lab.nsPath(lab.clientNS), "net/ipv6/conf/"+lab.clientIf+"/accept_dad", "0")
	writeSysctl(t, lab.nsPath(lab.clientNS), "net/ipv6/conf/"+lab.clientIf+"/router_solicitations", "0")
	ipCmd(t, "-n", lab.serverNS, "addr", "add", "10.231.7.1/24", "dev", lab.serverIf)
	for _, l := range []struct{ ns, dev string }{
		{lab.serverNS, "lo"}, {lab.serverNS, lab.serverIf}, {lab.clientNS, "lo"}, {lab.clientNS, lab.clientIf},
	} {
		ipCmd(t, "-n", l.ns, "link", "set", l.dev, "up")
	}
	return lab
}

// writeSysctl writes /proc/sys/<key> as seen from inside the namespace at nsPath.
func writeSysctl(t *testing.T, nsPath, key, value string) {
	t.Helper()
	err := inNetns(nsPath, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, nsPath, err)
	}
}

func TestEndToEndInNetns(t *testing.T) {
	lab := newNetnsLab(t)
	cfg := Config{
		Interface: lab.serverIf,
		ServerIP:  netip.MustParseAddr("10.231.7.1"),
		Subnet:    netip.MustParsePrefix("10.231.7.0/24"),
		Reservations: []Reservation{
			{MAC: testMAC, IP: netip.MustParseAddr("10.231.7.10")},
			{MAC: otherMAC, IP: netip.MustParseAddr("10.231.7.11")},
		},
		Root:                 testRoot(t),
		Boot:                 Boot{Kernel: "vmlinuz", Initrd: "initrd.img"},
		RouterAdvertisements: true,
		Netns:                lab.nsPath(lab.serverNS),
		Logger:               testLogger(t),
	}
	srv, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	clientNS := lab.nsPath(lab.clientNS)

	t.Run("reserved iPXE client gets its address and script URL", func(t *testing.T) {
		c := newNClient(t, clientNS, lab.clientIf, testMAC, 3)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		lease, err := c.Request(ctx, dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
		if err != nil {
			t.Fatalf("DHCP request: %v", err)
		}
		ack := lease.ACK
		if got := ack.YourIPAddr.String(); got != "10.231.7.10" {
			t.Errorf("address %s, want the reserved 10.231.7.10", got)
		}
		if want := "http://10.231.7.1:8080/ipxe/de:00:00:00:00:de"; ack.BootFileName != want || srv.ScriptURL(testMAC) != want {
			t.Errorf("boot file %q (ScriptURL %q), want %q", ack.BootFileName, srv.ScriptURL(testMAC), want)
		}
		if !bytes.Equal(ack.Options.Get(dhcpv4.OptionEtherboot), ipxeNoProxyDHCP) {
			t.Errorf("option 175 = %v, want no-pxedhcp", ack.Options.Get(dhcpv4.OptionEtherboot))
		}
		if !ack.ServerIdentifier().Equal(net.ParseIP("10.231.7.1")) {
			t.Errorf("server identifier %s", ack.ServerIdentifier())
		}
		var got []string
		for _, ev := range srv.Events(testMAC) {
			if ev.Protocol == ProtoDHCP {
				got = append(got, string(ev.Kind))
			}
		}
		// A client whose OFFER came after its retransmission timer (a loaded machine) sends its
		// DISCOVER again; each is answered, and one REQUEST and ACK end the exchange.
		if !regexp.MustCompile(`^(dhcp-discover,dhcp-offer,)+dhcp-request,dhcp-ack$`).MatchString(strings.Join(got, ",")) {
			t.Errorf("server recorded %v", got)
		}
	})

	t.Run("broadcast reply reaches a client socket with no address", func(t *testing.T) {
		// A kernel UDP socket on an interface without IPv4 address only
		// receives a reply sent to 255.255.255.255: this proves the broadcast.
		conn := openClientUDP(t, clientNS, lab.clientIf)
		d, err := dhcpv4.NewDiscovery(otherMAC, dhcpv4.WithBroadcast(false), dhcpv4.WithUserClass("iPXE", false))
		if err != nil {
			t.Fatal(err)
		}
		offer := exchangeUDP(t, conn, d)
		if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.YourIPAddr.String() != "10.231.7.11" {
			t.Errorf("got %s, want OFFER of 10.231.7.11", offer.Summary())
		}
	})

	t.Run("unknown MAC gets nothing", func(t *testing.T) {
		c := newNClient(t, clientNS, lab.clientIf, strangerM, 1)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		if offer, err := c.DiscoverOffer(ctx, dhcpv4.WithUserClass("iPXE", false)); err == nil {
			t.Fatalf("unknown MAC got %s", offer.Summary())
		}
		ev := waitEvent(t, srv, strangerM, KindDHCPIgnored)
		if ev.Reason != ReasonNotAllowListed {
			t.Errorf("ignored with reason %q, want %q", ev.Reason, ReasonNotAllowListed)
		}
		for _, ev := range srv.Events(strangerM) {
			if ev.Kind != KindDHCPIgnored {
				t.Errorf("unknown MAC has event %+v", ev)
			}
		}
	})

	t.Run("router solicitation gets an advertisement that configures nothing", func(t *testing.T) {
		ra := solicitRouter(t, clientNS, lab.clientIf)
		checkEmptyRA(t, ra)
		ev := waitEvent(t, srv, testMAC, KindRouterAdvertisement)
		if !strings.HasPrefix(ev.Detail, "solicited by fe80::") {
			t.Errorf("advertisement event %+v, want one solicited by the client's link-local address", ev)
		}
		if out := ipCmd(t, "-n", lab.clientNS, "-6", "addr", "show", "dev", lab.clientIf, "scope", "global"); strings.TrimSpace(out) != "" {
			t.Errorf("client got a global IPv6 address from the advertisement:\n%s", out)
		}
		if out := ipCmd(t, "-n", lab.clientNS, "-6", "route", "show", "default"); strings.TrimSpace(out) != "" {
			t.Errorf("client got a default route from the advertisement:\n%s", out)
		}
	})
}

// testLogger collects the server's logs and prints them only when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("server log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// newNClient opens an insomniacslk DHCP client in the client namespace, sending as mac.
func newNClient(t *testing.T, nsPath, ifname string, mac net.HardwareAddr, tries int) *nclient4.Client {
	t.Helper()
	var c *nclient4.Client
	err := inNetns(nsPath, func() error {
		var err error
		c, err = nclient4.New(ifname, nclient4.WithHWAddr(mac), nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(tries))
		return err
	})
	if err != nil {
		t.Fatalf("open DHCP client on %s: %v", ifname, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openClientUDP opens a kernel UDP socket on port 68 bound to ifname in the client namespace.
func openClientUDP(t *testing.T, nsPath, ifname string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	err := inNetns(nsPath, func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr == nil {
					serr = unix.BindToDevice(int(fd), ifname)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}}
		var err error
		pc, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
		return err
	})
	if err != nil {
		t.Fatalf("open UDP client socket on %s: %v", ifname, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// exchangeUDP broadcasts msg and returns the first reply with its transaction ID.
func exchangeUDP(t *testing.T, conn net.PacketConn, msg *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 4096)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if _, err := conn.WriteTo(msg.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}); err != nil {
			t.Fatalf("send %s: %v", msg.MessageType(), err)
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				break // resend
			}
			reply, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && reply.OpCode == dhcpv4.OpcodeBootReply && reply.TransactionID == msg.TransactionID {
				return reply
			}
		}
	}
	t.Fatalf("no reply to %s", msg.Summary())
	return nil
}

// solicitRouter sends a router solicitation from the client's link-local
// address, carrying the client's MAC, and returns the first advertisement.
func solicitRouter(t *testing.T, nsPath, ifname string) []byte {
	t.Helper()
	var (
		p   *ipv6.PacketConn
		ifi *net.Interface
	)
	err := inNetns(nsPath, func() error {
		var err error
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return err
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) }); err != nil {
				return err
			}
			return serr
		}}
		c, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		p = ipv6.NewPacketConn(c)
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeRouterAdvertisement)
		if err := p.SetICMPFilter(&f); err != nil {
			return err
		}
		return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagSrc, true)
	})
	if err != nil {
		t.Fatalf("open ICMPv6 socket on %s: %v", ifname, err)
	}
	defer p.Close()

	rs, err := (&icmp.Message{
		Type: ipv6.ICMPTypeRouterSolicitation,
		Body: &icmp.RawBody{Data: append([]byte{0, 0, 0, 0, 1, 1}, ifi.HardwareAddr...)},
	}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 1500)
	var lastErr error
	for time.Now().Before(deadline) {
		cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: ifi.Index}
		if _, err := p.WriteTo(rs, cm, &net.IPAddr{IP: allRouters}); err != nil {
			// The link may be up for a moment before IPv6 is usable on it.
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, rcm, src, err := p.ReadFrom(buf)
		if err != nil {
			lastErr = err
			continue // the server may still be waiting for its link-local address
		}
		if rcm == nil || rcm.HopLimit != 255 {
			t.Errorf("advertisement from %v with control %v, want hop limit 255", src, rcm)
		}
		if a, ok := src.(*net.IPAddr); !ok || !a.IP.IsLinkLocalUnicast() {
			t.Errorf("advertisement from %v, want a link-local source", src)
		}
		return append([]byte(nil), buf[:n]...)
	}
	t.Fatalf("no router advertisement; last error: %v", lastErr)
	return nil
}

// checkEmptyRA checks an advertisement announces nothing: lifetime 0, M=O=0, no prefix.
func checkEmptyRA(t *testing.T, b []byte) {
	t.Helper()
	m, err := icmp.ParseMessage(58, b)
	if err != nil {
		t.Fatalf("parse advertisement: %v", err)
	}
	raw, ok := m.Body.(*icmp.RawBody)
	if m.Type != ipv6.ICMPTypeRouterAdvertisement || !ok || len(raw.Data) < 12 {
		t.Fatalf("not a router advertisement: %x", b)
	}
	d := raw.Data
	if flags := d[1]; flags&0xc0 != 0 {
		t.Errorf("M/O flags %08b, want both clear", flags)
	}
	if lifetime := int(d[2])<<8 | int(d[3]); lifetime != 0 {
		t.Errorf("router lifetime %d, want 0", lifetime)
	}
	for opts := d[12:]; len(opts) >= 2 && opts[1] > 0 && int(opts[1])*8 <= len(opts); opts = opts[int(opts[1])*8:] {
		if opts[0] == 3 {
			t.Errorf("advertisement carries prefix information %x", opts[:int(opts[1])*8])
		}
	}
}

// nsHTTPClient is an HTTP client whose connections are opened inside the
// namespace at nsPath, from local when it is valid.
func nsHTTPClient(t *testing.T, nsPath string, local netip.Addr) *http.Client {
	t.Helper()
	dialer := &net.Dialer{}
	if local.IsValid() {
		dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(nsPath, func() error {
			var err error
			c, err = dialer.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// nsGet fetches url with client and returns status and body.
func nsGet(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// In the pod the HTTP port listens on every interface because the suite
// reads /events through the pod network; scripts, files and TFTP must
// still be served on the PXE interface's address only. The server's
// namespace here has the PXE interface (10.231.7.1) and loopback, which
// stands in for the pod network.
func TestScriptsFilesAndTFTPOnlyOnServerIP(t *testing.T) {
	lab := newNetnsLab(t)
	serverNS, clientNS := lab.nsPath(lab.serverNS), lab.nsPath(lab.clientNS)
	ipCmd(t, "-n", lab.clientNS, "addr", "add", "10.231.7.10/24", "dev", lab.clientIf)
	serverIP, guestIP := netip.MustParseAddr("10.231.7.1"), netip.MustParseAddr("10.231.7.10")

	for _, serveAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("ServeAllAddrs=%v", serveAll), func(t *testing.T) {
			srv, err := Start(t.Context(), Config{
				Interface:     lab.serverIf,
				ServerIP:      serverIP,
				Subnet:        netip.MustParsePrefix("10.231.7.0/24"),
				Reservations:  []Reservation{{MAC: testMAC, IP: guestIP}},
				Root:          testRoot(t),
				Boot:          Boot{Kernel: "vmlinuz", Initrd: "initrd.img"},
				ServeAllAddrs: serveAll,
				Netns:         serverNS,
				Logger:        testLogger(t),
			})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := srv.Stop(ctx); err != nil {
					t.Errorf("Stop: %v", err)
				}
			}()
			port := strconv.Itoa(int(srv.HTTPAddr().Port()))
			pod := "http://127.0.0.1:" + port
			guest := nsHTTPClient(t, clientNS, guestIP)
			local := nsHTTPClient(t, serverNS, netip.Addr{})

			// The guest, on the PXE segment, gets its script and files.
			if code, body := nsGet(t, guest, srv.ScriptURL(testMAC)); code != http.StatusOK || !strings.Contains(body, "pxec.nonce=") {
				t.Errorf("guest's script: status %d %q", code, body)
			}
			if code, body := nsGet(t, guest, srv.BaseURL()+"/vmlinuz"); code != http.StatusOK || body != testFiles["vmlinuz"] {
				t.Errorf("guest's kernel: status %d %q", code, body)
			}
			nonce := LastScriptNonce(srv.Events(testMAC))

			// The events API answers on the other address too.
			if code, body := nsGet(t, local, pod+"/events?mac="+testMAC.String()); code != http.StatusOK || !strings.Contains(body, nonce) {
				t.Errorf("events on the pod address: status %d %.200q", code, body)
			}
			if code, _ := nsGet(t, local, pod+"/healthz"); code != http.StatusOK {
				t.Errorf("healthz on the pod address: status %d", code)
			}
			code, body := nsGet(t, local, pod+"/vmlinuz")
			switch {
			case serveAll && code != http.StatusOK:
				t.Errorf("kernel on the pod address with ServeAllAddrs: status %d", code)
			case !serveAll && (code != http.StatusForbidden || strings.Contains(body, testFiles["vmlinuz"])):
				t.Errorf("kernel on the pod address: status %d %q, want 403", code, body)
			}
			// A script fetched there is refused either way: 127.0.0.1 is
			// not the guest's address. It never takes the guest's nonce.
			if code, body := nsGet(t, local, pod+scriptPathPrefix+testMAC.String()); code != http.StatusForbidden || strings.Contains(body, "pxec.") {
				t.Errorf("script on the pod address: status %d %q, want 403", code, body)
			}
			if got := LastScriptNonce(srv.Events(testMAC)); got != nonce {
				t.Errorf("last nonce %s, want the guest's %s", got, nonce)
			}
			if !serveAll {
				ev := waitEventMatching(t, srv, func(e Event) bool { return e.Reason == ReasonNotServerIP && e.Path == "/vmlinuz" })
				if ev.Status != http.StatusForbidden || ev.Detail != "addressed to 127.0.0.1" {
					t.Errorf("refusal recorded as %+v", ev)
				}
			}

			// TFTP binds ServerIP unless widened; a read request to the
			// other address then finds no socket (ICMP port unreachable).
			tftpHost := srv.TFTPAddr().Addr()
			if want := map[bool]netip.Addr{false: serverIP, true: netip.IPv4Unspecified()}[serveAll]; tftpHost != want {
				t.Errorf("TFTP bound to %s, want %s", tftpHost, want)
			}
			err = inNetns(serverNS, func() error {
				c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(int(srv.TFTPAddr().Port())))
				if err != nil {
					return err
				}
				defer c.Close()
				if _, err := c.Write([]byte("\x00\x01vmlinuz\x00octet\x00")); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard against a hang, not an assertion
				_, err = c.Read(make([]byte, 600))
				return err
			})
			if refused := errors.Is(err, syscall.ECONNREFUSED); refused == serveAll {
				t.Errorf("TFTP read request to 127.0.0.1: %v (ServeAllAddrs=%v)", err, serveAll)
			}
		})
	}
}
