package pxe

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// testResponder is the DHCP decision logic of a server on 10.0.0.0/24.
func testResponder(t testing.TB) *dhcpResponder {
	t.Helper()
	res := []Reservation{
		{MAC: testMAC, IP: netip.MustParseAddr("10.0.0.10"), Hostname: "pxec-guest"},
		{MAC: otherMAC, IP: netip.MustParseAddr("10.0.0.11")},
	}
	byMAC := map[string]Reservation{}
	for _, r := range res {
		byMAC[macKey(r.MAC)] = r
	}
	return &dhcpResponder{
		serverIP:  netip.MustParseAddr("10.0.0.1"),
		subnet:    netip.MustParsePrefix("10.0.0.0/24"),
		router:    netip.MustParseAddr("10.0.0.254"),
		dns:       []netip.Addr{netip.MustParseAddr("10.0.0.53")},
		leaseTime: time.Hour,
		byMAC:     byMAC,
		scriptURL: func(mac string) string { return "http://10.0.0.1:8080/ipxe/" + mac },
	}
}

// discover builds a DISCOVER as firmware would send it.
func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// request builds a REQUEST with the given modifiers.
func request(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	r, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ipxeClass() dhcpv4.Modifier { return dhcpv4.WithUserClass("iPXE", false) }

func arch(a iana.Arch) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientArch(a)) }

// wire sends a packet through its byte form, as the socket would.
func wire(t testing.TB, m *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	back, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		t.Fatalf("reply does not survive the wire: %v", err)
	}
	return back
}

func kinds(evs []Event) string {
	var k []string
	for _, e := range evs {
		k = append(k, string(e.Kind))
	}
	return strings.Join(k, ",")
}

func TestDHCPOffersReservedAddress(t *testing.T) {
	d := testResponder(t)
	out := d.respond(wire(t, discover(t, testMAC, arch(iana.INTEL_X86PC))))
	if out.reply == nil {
		t.Fatalf("no OFFER; events %+v", out.events)
	}
	r := wire(t, out.reply)
	checks := []struct{ name, got, want string }{
		{"message type", r.MessageType().String(), dhcpv4.MessageTypeOffer.String()},
		{"yiaddr", r.YourIPAddr.String(), "10.0.0.10"},
		{"siaddr", r.ServerIPAddr.String(), "10.0.0.1"},
		{"server identifier", r.ServerIdentifier().String(), "10.0.0.1"},
		{"subnet mask", net.IP(r.SubnetMask()).String(), "255.255.255.0"},
		{"router", net.IP(r.Router()[0]).String(), "10.0.0.254"},
		{"dns", r.DNS()[0].String(), "10.0.0.53"},
		{"lease", r.IPAddressLeaseTime(0).String(), time.Hour.String()},
		{"hostname", r.HostName(), "pxec-guest"},
		{"chaddr", r.ClientHWAddr.String(), testMAC.String()},
		{"events", kinds(out.events), "dhcp-discover,dhcp-offer"},
		{"event ip", out.events[1].IP, "10.0.0.10"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if r.TransactionID != out.reply.TransactionID {
		t.Error("transaction ID not echoed")
	}
}

func TestDHCPIgnoresUnknownMAC(t *testing.T) {
	d := testResponder(t)
	for _, msg := range []*dhcpv4.DHCPv4{
		discover(t, strangerM, ipxeClass()),
		request(t, strangerM, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))),
	} {
		out := d.respond(wire(t, msg))
		if out.reply != nil {
			t.Errorf("%s from unknown MAC answered with %s", msg.MessageType(), out.reply.MessageType())
		}
		if len(out.events) != 1 || out.events[0].Kind != KindDHCPIgnored || out.events[0].Reason != ReasonNotAllowListed || out.events[0].MAC != strangerM.String() {
			t.Errorf("%s from unknown MAC: events %+v, want one dhcp-ignored %q for %s", msg.MessageType(), out.events, ReasonNotAllowListed, strangerM)
		}
	}
}

func TestDHCPBootFileByArchitectureAndUserClass(t *testing.T) {
	url := "http://10.0.0.1:8080/ipxe/de:00:00:00:00:de"
	tests := []struct {
		name     string
		mods     []dhcpv4.Modifier
		wantFile string // "" means the request is ignored
		wantTFTP bool
		firmware string
	}{
		{"BIOS PXE ROM", []dhcpv4.Modifier{arch(iana.INTEL_X86PC)}, BIOSLoader, true, "bios"},
		{"EFI arch 7", []dhcpv4.Modifier{arch(iana.EFI_X86_64)}, EFILoader, true, "efi"},
		{"EFI arch 9", []dhcpv4.Modifier{arch(iana.EFI_BC)}, EFILoader, true, "efi"},
		{"no arch option counts as BIOS", nil, BIOSLoader, true, ""},
		{"iPXE on BIOS", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), ipxeClass()}, url, false, "bios"},
		{"iPXE on EFI", []dhcpv4.Modifier{arch(iana.EFI_X86_64), ipxeClass()}, url, false, "efi"},
		{"iPXE with RFC 3004 user class", []dhcpv4.Modifier{arch(iana.EFI_BC), dhcpv4.WithUserClass("iPXE", true)}, url, false, "efi"},
		{"other user class", []dhcpv4.Modifier{arch(iana.INTEL_X86PC), dhcpv4.WithUserClass("gPXE", false)}, BIOSLoader, true, "bios"},
		{"EFI IA32 ignored", []dhcpv4.Modifier{arch(iana.EFI_IA32), ipxeClass()}, "", false, ""},
		{"ARM64 ignored", []dhcpv4.Modifier{arch(iana.EFI_ARM64)}, "", false, ""},
		{"malformed arch ignored", []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7})}, "", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testResponder(t)
			for _, msg := range []*dhcpv4.DHCPv4{
				discover(t, testMAC, tt.mods...),
				request(t, testMAC, append([]dhcpv4.Modifier{
					dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10"))),
					dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.0.1"))),
				}, tt.mods...)...),
			} {
				out := d.respond(wire(t, msg))
				if tt.wantFile == "" {
					if out.reply != nil {
						t.Fatalf("%s answered, want ignored", msg.MessageType())
					}
					last := out.events[len(out.events)-1]
					if last.Kind != KindDHCPIgnored || !strings.Contains(last.Reason, "architecture") {
						t.Errorf("%s: last event %+v, want dhcp-ignored naming the architecture", msg.MessageType(), last)
					}
					continue
				}
				if out.reply == nil {
					t.Fatalf("%s not answered: %+v", msg.MessageType(), out.events)
				}
				r := wire(t, out.reply)
				if r.BootFileName != tt.wantFile || r.BootFileNameOption() != tt.wantFile {
					t.Errorf("%s boot file = %q / option 67 %q, want %q", msg.MessageType(), r.BootFileName, r.BootFileNameOption(), tt.wantFile)
				}
				if got := r.TFTPServerName() == "10.0.0.1"; got != tt.wantTFTP {
					t.Errorf("%s option 66 = %q, want TFTP server set: %v", msg.MessageType(), r.TFTPServerName(), tt.wantTFTP)
				}
				if ev := out.events[len(out.events)-1]; ev.Path != tt.wantFile || ev.Firmware != tt.firmware {
					t.Errorf("%s event path %q firmware %q, want %q %q", msg.MessageType(), ev.Path, ev.Firmware, tt.wantFile, tt.firmware)
				}
			}
		})
	}
}

func TestDHCPRepliesCarryIPXENoProxyDHCP(t *testing.T) {
	d := testResponder(t)
	for _, msg := range []*dhcpv4.DHCPv4{
		discover(t, testMAC, ipxeClass()),
		discover(t, testMAC, arch(iana.EFI_X86_64)),
		request(t, testMAC, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))),
	} {
		out := d.respond(wire(t, msg))
		if out.reply == nil {
			t.Fatalf("%s not answered", msg.MessageType())
		}
		got := wire(t, out.reply).Options.Get(dhcpv4.OptionEtherboot)
		if !bytes.Equal(got, []byte{176, 1, 1}) {
			t.Errorf("%s reply option 175 = %v, want sub-option 176 = 1", msg.MessageType(), got)
		}
	}
}

func TestDHCPEchoesPXEClientVendorClass(t *testing.T) {
	d := testResponder(t)
	tests := []struct {
		class string
		want  string
	}{
		{"PXEClient:Arch:00000:UNDI:002001", "PXEClient"},
		{"udhcp 1.36.1", ""},
		{"", ""},
	}
	for _, tt := range tests {
		var mods []dhcpv4.Modifier
		if tt.class != "" {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClassIdentifier(tt.class)))
		}
		r := wire(t, d.respond(wire(t, discover(t, testMAC, mods...))).reply)
		if got := r.ClassIdentifier(); got != tt.want {
			t.Errorf("vendor class %q: reply option 60 = %q, want %q", tt.class, got, tt.want)
		}
		if has := r.Options.Has(dhcpv4.OptionVendorSpecificInformation); has != (tt.want != "") {
			t.Errorf("vendor class %q: option 43 present = %v", tt.class, has)
		}
	}
}

func TestDHCPRequestOutcomes(t *testing.T) {
	reqIP := func(s string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(s)))
	}
	sid := func(s string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(s)))
	}
	tests := []struct {
		name       string
		mods       []dhcpv4.Modifier
		want       EventKind // last event
		wantReason string
	}{
		{"selecting our offer", []dhcpv4.Modifier{reqIP("10.0.0.10"), sid("10.0.0.1")}, KindDHCPAck, ""},
		{"init-reboot with reserved address", []dhcpv4.Modifier{reqIP("10.0.0.10")}, KindDHCPAck, ""},
		{"renewing with reserved ciaddr", []dhcpv4.Modifier{dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))}, KindDHCPAck, ""},
		{"asks for another address", []dhcpv4.Modifier{reqIP("10.0.0.99"), sid("10.0.0.1")}, KindDHCPNak, "requested 10.0.0.99, reserved 10.0.0.10"},
		{"init-reboot with another address", []dhcpv4.Modifier{reqIP("10.0.0.11")}, KindDHCPNak, "requested 10.0.0.11"},
		{"renewing another ciaddr", []dhcpv4.Modifier{dhcpv4.WithClientIP(net.ParseIP("10.0.0.77"))}, KindDHCPNak, "requested 10.0.0.77"},
		{"names no address", nil, KindDHCPNak, "no address"},
		{"selected another server", []dhcpv4.Modifier{reqIP("10.0.0.10"), sid("10.0.0.2")}, KindDHCPIgnored, "selected server 10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testResponder(t)
			out := d.respond(wire(t, request(t, testMAC, tt.mods...)))
			last := out.events[len(out.events)-1]
			if out.events[0].Kind != KindDHCPRequest || last.Kind != tt.want || !strings.Contains(last.Reason, tt.wantReason) {
				t.Fatalf("events %+v, want dhcp-request then %s with reason containing %q", out.events, tt.want, tt.wantReason)
			}
			switch tt.want {
			case KindDHCPIgnored:
				if out.reply != nil {
					t.Errorf("answered with %s", out.reply.MessageType())
				}
			case KindDHCPNak:
				r := wire(t, out.reply)
				if r.MessageType() != dhcpv4.MessageTypeNak || !r.YourIPAddr.IsUnspecified() || r.Message() != last.Reason || !r.ServerIdentifier().Equal(net.ParseIP("10.0.0.1")) {
					t.Errorf("NAK = %s", r.Summary())
				}
			case KindDHCPAck:
				r := wire(t, out.reply)
				if r.MessageType() != dhcpv4.MessageTypeAck || r.YourIPAddr.String() != "10.0.0.10" {
					t.Errorf("ACK = %s", r.Summary())
				}
			}
		})
	}
}

func TestDHCPReleaseDeclineAndInform(t *testing.T) {
	d := testResponder(t)
	tests := []struct {
		name      string
		msg       *dhcpv4.DHCPv4
		wantKinds string
		wantReply bool
	}{
		{"release", request(t, testMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), "dhcp-release", false},
		{"decline", request(t, testMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeDecline), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.0.10")))), "dhcp-decline", false},
		{"inform", request(t, testMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeInform), dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), "dhcp-inform,dhcp-ack", true},
		{"inform without ciaddr", request(t, testMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeInform)), "dhcp-inform,dhcp-ignored", false},
		{"server message type from a client", request(t, testMAC, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer)), "dhcp-ignored", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := d.respond(wire(t, tt.msg))
			if got := kinds(out.events); got != tt.wantKinds {
				t.Errorf("events %s, want %s", got, tt.wantKinds)
			}
			if (out.reply != nil) != tt.wantReply {
				t.Fatalf("reply %v, want reply: %v", out.reply, tt.wantReply)
			}
			if out.reply != nil {
				r := wire(t, out.reply)
				if !r.YourIPAddr.IsUnspecified() || r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
					t.Errorf("ACK to INFORM carries an address or lease: %s", r.Summary())
				}
			}
		})
	}
	decline := d.respond(wire(t, tests[1].msg))
	if !strings.Contains(decline.events[0].Reason, "10.0.0.10 in use") {
		t.Errorf("decline reason %q does not name the address in use", decline.events[0].Reason)
	}
}

func TestDHCPReplyDestination(t *testing.T) {
	d := testResponder(t)
	tests := []struct {
		name string
		msg  *dhcpv4.DHCPv4
		want string
	}{
		{"discover without broadcast flag", discover(t, testMAC, dhcpv4.WithBroadcast(false)), "255.255.255.255:68"},
		{"discover with broadcast flag", discover(t, testMAC, dhcpv4.WithBroadcast(true)), "255.255.255.255:68"},
		{"renewal unicast to ciaddr", request(t, testMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.10"))), "10.0.0.10:68"},
		{"NAK to renewing client is broadcast", request(t, testMAC, dhcpv4.WithClientIP(net.ParseIP("10.0.0.77"))), "255.255.255.255:68"},
		{"relayed", discover(t, testMAC, dhcpv4.WithGatewayIP(net.ParseIP("10.9.9.1"))), "10.9.9.1:67"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := wire(t, tt.msg)
			out := d.respond(req)
			if out.reply == nil {
				t.Fatalf("no reply: %+v", out.events)
			}
			if got := replyDestination(req, out.reply).String(); got != tt.want {
				t.Errorf("destination %s, want %s", got, tt.want)
			}
			if out.reply.IsBroadcast() != req.IsBroadcast() && out.reply.MessageType() != dhcpv4.MessageTypeNak {
				t.Errorf("broadcast flag not echoed")
			}
		})
	}
}

func TestDHCPIgnoresNonEthernetAndBOOTP(t *testing.T) {
	d := testResponder(t)
	bootp := discover(t, testMAC)
	bootp.Options.Del(dhcpv4.OptionDHCPMessageType)
	reply := discover(t, testMAC)
	reply.OpCode = dhcpv4.OpcodeBootReply
	long := discover(t, append(append(net.HardwareAddr{}, testMAC...), 0, 0))
	for name, msg := range map[string]*dhcpv4.DHCPv4{"bootp": bootp, "bootreply": reply, "8-byte chaddr": long} {
		out := d.respond(wire(t, msg))
		if out.reply != nil || kinds(out.events) != "dhcp-ignored" {
			t.Errorf("%s: reply %v events %+v, want only dhcp-ignored", name, out.reply, out.events)
		}
	}
}
