package pxe

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// iPXE's encapsulated option 175 with sub-option 176 (no-pxedhcp) = 1: iPXE
// otherwise waits 2-3 s for a ProxyDHCP offer that never comes.
var ipxeNoProxyDHCP = []byte{176, 1, 1}

// PXE vendor option 43 with PXE_DISCOVERY_CONTROL (6) = 8: "download the boot
// file named in this reply without boot server discovery". Sent with the
// echoed "PXEClient" vendor class, which tells PXE ROMs to look for option 43.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// dhcpResponder decides DHCP answers. It holds only configuration, so respond
// is a pure function of the request: tests and the fuzzer call it without sockets.
type dhcpResponder struct {
	serverIP  netip.Addr
	subnet    netip.Prefix
	router    netip.Addr
	dns       []netip.Addr
	leaseTime time.Duration
	byMAC     map[string]Reservation
	// scriptURL returns the iPXE script URL for a MAC in macKey form.
	scriptURL func(mac string) string
}

// dhcpOutcome is what respond decided: the reply to send (nil for none) and
// the events to record, in order. Events carry no Time and no Remote; the
// caller stamps them.
type dhcpOutcome struct {
	reply  *dhcpv4.DHCPv4
	events []Event
}

// clientInfo is what a request says about the firmware that sent it.
type clientInfo struct {
	arch      string // option 93 in decimal, "" when absent
	archKnown bool   // arch is one we serve (or absent)
	firmware  string // "bios", "efi" or ""
	userClass string
	ipxe      bool
	pxeClient bool // vendor class (option 60) starts with "PXEClient"
}

// describeClient reads options 60, 77 and 93. A missing option 93 counts as
// BIOS, the PXE default (RFC 4578 clients always send it; only plain DHCP
// clients omit it).
func describeClient(req *dhcpv4.DHCPv4) clientInfo {
	info := clientInfo{archKnown: true}
	if raw := req.Options.Get(dhcpv4.OptionClientSystemArchitectureType); raw != nil {
		if len(raw) < 2 || len(raw)%2 != 0 {
			info.arch = "malformed"
			info.archKnown = false
		} else {
			a := iana.Arch(uint16(raw[0])<<8 | uint16(raw[1]))
			info.arch = strconv.Itoa(int(a))
			switch a {
			case iana.INTEL_X86PC:
				info.firmware = "bios"
			case iana.EFI_X86_64, iana.EFI_BC: // 7 and 9: x86-64 UEFI
				info.firmware = "efi"
			default:
				info.archKnown = false
			}
		}
	}
	if req.Options.Has(dhcpv4.OptionUserClassInformation) {
		classes := req.UserClass()
		info.userClass = strings.Join(classes, ",")
		info.ipxe = slices.Contains(classes, "iPXE")
	}
	info.pxeClient = strings.HasPrefix(req.ClassIdentifier(), "PXEClient")
	return info
}

// bootFile picks what the client should load next and whether it comes over TFTP.
func (d *dhcpResponder) bootFile(info clientInfo, mac string) (file string, tftp bool) {
	switch {
	case info.ipxe:
		return d.scriptURL(mac), false
	case info.firmware == "efi":
		return EFILoader, true
	default:
		return BIOSLoader, true
	}
}

// respond answers one DHCP request. Only BOOTREQUESTs from allow-listed
// Ethernet MACs with a served architecture get replies.
func (d *dhcpResponder) respond(req *dhcpv4.DHCPv4) dhcpOutcome {
	mac := macKey(req.ClientHWAddr)
	info := describeClient(req)
	mt := req.MessageType()
	base := Event{
		MAC:        mac,
		Protocol:   ProtoDHCP,
		ClientArch: info.arch,
		Firmware:   info.firmware,
		UserClass:  info.userClass,
		Detail:     fmt.Sprintf("%s xid %s", mt, req.TransactionID),
	}
	ignore := func(format string, args ...any) dhcpOutcome {
		ev := base
		ev.Kind = KindDHCPIgnored
		ev.Reason = fmt.Sprintf(format, args...)
		return dhcpOutcome{events: []Event{ev}}
	}

	switch {
	case req.OpCode != dhcpv4.OpcodeBootRequest:
		return ignore("opcode %s is not BOOTREQUEST", req.OpCode)
	case mt == dhcpv4.MessageTypeNone:
		return ignore("no DHCP message type (plain BOOTP is not served)")
	case req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6:
		return ignore("hardware type %d with address length %d is not Ethernet", req.HWType, len(req.ClientHWAddr))
	}
	res, ok := d.byMAC[mac]
	if !ok {
		return ignore(ReasonNotAllowListed)
	}

	seen := base
	seen.Kind = map[dhcpv4.MessageType]EventKind{
		dhcpv4.MessageTypeDiscover: KindDHCPDiscover,
		dhcpv4.MessageTypeRequest:  KindDHCPRequest,
		dhcpv4.MessageTypeRelease:  KindDHCPRelease,
		dhcpv4.MessageTypeDecline:  KindDHCPDecline,
		dhcpv4.MessageTypeInform:   KindDHCPInform,
	}[mt]
	if seen.Kind == "" {
		return ignore("message type %s is not one a client sends", mt)
	}
	out := dhcpOutcome{events: []Event{seen}}
	add := func(ev Event) dhcpOutcome {
		out.events = append(out.events, ev)
		return out
	}
	ignored := func(format string, args ...any) dhcpOutcome {
		return add(ignore(format, args...).events[0])
	}
	if !info.archKnown && (mt == dhcpv4.MessageTypeDiscover || mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform) {
		return ignored("unsupported client architecture %s (served: 0 BIOS, 7 and 9 x86-64 EFI)", info.arch)
	}

	switch mt {
	case dhcpv4.MessageTypeDiscover:
		out.reply = d.offerOrAck(req, dhcpv4.MessageTypeOffer, res, info, false)
		return add(replyEvent(base, KindDHCPOffer, out.reply))

	case dhcpv4.MessageTypeRequest:
		requested, why := requestedAddr(req)
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(d.serverIP.AsSlice())) {
			// RFC 2131 4.3.2: the client chose another server's offer; a NAK
			// here would break that lease, so stay silent.
			return ignored("client selected server %s", sid)
		}
		if !requested.IsValid() {
			out.reply = d.nak(req, why)
		} else if requested != res.IP {
			out.reply = d.nak(req, fmt.Sprintf("requested %s, reserved %s", requested, res.IP))
		} else {
			out.reply = d.offerOrAck(req, dhcpv4.MessageTypeAck, res, info, false)
			return add(replyEvent(base, KindDHCPAck, out.reply))
		}
		ev := base
		ev.Kind = KindDHCPNak
		ev.Reason = out.reply.Message()
		return add(ev)

	case dhcpv4.MessageTypeInform:
		if isUnspecified(req.ClientIPAddr) {
			return ignored("INFORM without ciaddr")
		}
		out.reply = d.offerOrAck(req, dhcpv4.MessageTypeAck, res, info, true)
		return add(replyEvent(base, KindDHCPAck, out.reply))

	case dhcpv4.MessageTypeDecline:
		// The reservation is in use by someone else on the segment: worth a warning.
		out.events[0].Reason = fmt.Sprintf("client reports reserved address %s in use", res.IP)
		return out
	}
	// RELEASE: reservations are static, there is no lease state to free.
	return out
}

// requestedAddr finds the address a REQUEST asks for: option 50 in the
// SELECTING and INIT-REBOOT states, ciaddr when RENEWING or REBINDING.
func requestedAddr(req *dhcpv4.DHCPv4) (netip.Addr, string) {
	if ip := req.RequestedIPAddress(); ip != nil {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok {
			return a, ""
		}
		return netip.Addr{}, "malformed requested address option"
	}
	if !isUnspecified(req.ClientIPAddr) {
		if a, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok {
			return a, ""
		}
	}
	return netip.Addr{}, "request names no address"
}

// replyEvent describes a sent OFFER or ACK.
func replyEvent(base Event, kind EventKind, reply *dhcpv4.DHCPv4) Event {
	ev := base
	ev.Kind = kind
	if !isUnspecified(reply.YourIPAddr) {
		ev.IP = reply.YourIPAddr.String()
	}
	ev.Path = reply.BootFileName
	return ev
}

func isUnspecified(ip net.IP) bool {
	return ip == nil || ip.IsUnspecified()
}

// newReply starts a BOOTREPLY that echoes what RFC 2131 and RFC 6842 say must be echoed.
func newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientHWAddr:  append(net.HardwareAddr(nil), req.ClientHWAddr...),
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: net.IPv4zero,
		Options:       make(dhcpv4.Options),
	}
	if !isUnspecified(req.GatewayIPAddr) && req.GatewayIPAddr.To4() != nil {
		r.GatewayIPAddr = req.GatewayIPAddr.To4()
	}
	r.UpdateOption(dhcpv4.OptMessageType(mt))
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionClientIdentifier, dhcpv4.OptionRelayAgentInformation} {
		if v := req.Options.Get(code); v != nil {
			r.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	return r
}

// offerOrAck builds an OFFER or ACK for res. An ACK to INFORM carries
// configuration but no address or lease (RFC 2131 4.3.5).
func (d *dhcpResponder) offerOrAck(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, res Reservation, info clientInfo, inform bool) *dhcpv4.DHCPv4 {
	r := newReply(req, mt)
	server := net.IP(d.serverIP.AsSlice())
	r.ServerIPAddr = server
	if mt == dhcpv4.MessageTypeAck && !isUnspecified(req.ClientIPAddr) && req.ClientIPAddr.To4() != nil {
		r.ClientIPAddr = req.ClientIPAddr.To4()
	}
	r.UpdateOption(dhcpv4.OptServerIdentifier(server))
	r.UpdateOption(dhcpv4.OptSubnetMask(subnetMask(d.subnet)))
	if !inform {
		r.YourIPAddr = net.IP(res.IP.AsSlice())
		r.UpdateOption(dhcpv4.OptIPAddressLeaseTime(d.leaseTime))
		r.UpdateOption(dhcpv4.OptRenewTimeValue(d.leaseTime / 2))
		r.UpdateOption(dhcpv4.OptRebindingTimeValue(d.leaseTime * 7 / 8))
	}
	if d.router.IsValid() {
		r.UpdateOption(dhcpv4.OptRouter(net.IP(d.router.AsSlice())))
	}
	if len(d.dns) > 0 {
		ips := make([]net.IP, len(d.dns))
		for i, a := range d.dns {
			ips[i] = net.IP(a.AsSlice())
		}
		r.UpdateOption(dhcpv4.OptDNS(ips...))
	}
	if res.Hostname != "" {
		r.UpdateOption(dhcpv4.OptHostName(res.Hostname))
	}

	file, tftp := d.bootFile(info, macKey(res.MAC))
	r.BootFileName = file
	r.UpdateOption(dhcpv4.OptBootFileName(file))
	if tftp {
		r.UpdateOption(dhcpv4.OptTFTPServerName(d.serverIP.String()))
	}
	if info.pxeClient {
		r.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
	}
	r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionEtherboot, ipxeNoProxyDHCP))
	return r
}

// nak builds a DHCPNAK whose option 56 carries the reason.
func (d *dhcpResponder) nak(req *dhcpv4.DHCPv4, reason string) *dhcpv4.DHCPv4 {
	r := newReply(req, dhcpv4.MessageTypeNak)
	r.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(d.serverIP.AsSlice())))
	r.UpdateOption(dhcpv4.OptMessage(reason))
	return r
}

// replyDestination says where a reply goes (RFC 2131 4.1): to the relay when
// giaddr is set; NAKs are broadcast; a client with ciaddr gets unicast;
// everyone else (no address yet, broadcast flag or not) gets a broadcast on
// the interface, since unicasting to an address the client does not have yet
// would need an ARP entry we cannot add from a UDP socket.
func replyDestination(req, reply *dhcpv4.DHCPv4) *net.UDPAddr {
	if !isUnspecified(req.GatewayIPAddr) && req.GatewayIPAddr.To4() != nil {
		if reply.MessageType() == dhcpv4.MessageTypeNak {
			reply.SetBroadcast()
		}
		return &net.UDPAddr{IP: req.GatewayIPAddr.To4(), Port: dhcpv4.ServerPort}
	}
	if reply.MessageType() != dhcpv4.MessageTypeNak && !isUnspecified(req.ClientIPAddr) && req.ClientIPAddr.To4() != nil {
		return &net.UDPAddr{IP: req.ClientIPAddr.To4(), Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}
