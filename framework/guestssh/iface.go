package guestssh

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Commands whose output the parsers read. They work in busybox sh and ash
// as well as in bash and dash, so they can be run over SSH or on the
// serial console alike.
const (
	// IPLinkCommand lists links one per line.
	IPLinkCommand = "ip -o link"
	// IPAddrCommand lists addresses one per line.
	IPAddrCommand = "ip -o addr"
	// SysClassNetCommand prints one line of key=value fields per
	// interface from /sys/class/net: name, ifindex, address, operstate,
	// flags and mtu. busybox ip prints no operational state; this does.
	SysClassNetCommand = `for d in /sys/class/net/*; do [ -e "$d/ifindex" ] || continue; ` +
		`printf 'name=%s ifindex=%s address=%s operstate=%s flags=%s mtu=%s\n' "${d##*/}" ` +
		`"$(cat "$d/ifindex")" "$(cat "$d/address")" "$(cat "$d/operstate")" "$(cat "$d/flags")" "$(cat "$d/mtu")"; done`
)

// iffUp is IFF_UP from <net/if.h>: the interface is administratively up.
const iffUp = 0x1

// Interface is the state of one guest network interface.
type Interface struct {
	// Index is the kernel's ifindex.
	Index int
	// Name is the interface name without ip's "@peer" suffix.
	Name string
	// MAC is the link-layer address; nil for links without one.
	MAC net.HardwareAddr
	// Flags are the flags ip prints between angle brackets, e.g. "UP".
	Flags []string
	// Up is IFF_UP: the interface was set up, whether or not it has a link.
	Up bool
	// OperState is the kernel's operational state as /sys prints it:
	// "up", "down", "lowerlayerdown", "unknown", ...
	OperState string
	// MTU is the interface's MTU.
	MTU int
	// IPv4 holds the interface's IPv4 addresses with their prefix lengths.
	IPv4 []netip.Prefix
	// IPv6 holds the interface's IPv6 addresses, link-local ones included.
	IPv6 []netip.Prefix
}

// Interfaces reads the guest's interfaces with IPLinkCommand, IPAddrCommand
// and SysClassNetCommand and merges what they say.
func (c *Client) Interfaces(ctx context.Context) ([]Interface, error) {
	var out [3]string
	for i, cmd := range []string{IPLinkCommand, IPAddrCommand, SysClassNetCommand} {
		var err error
		if out[i], err = c.Output(ctx, cmd); err != nil {
			return nil, fmt.Errorf("read interfaces: %w", err)
		}
	}
	ifs, err := InterfacesFromOutput(out[0], out[1], out[2])
	if err != nil {
		return nil, fmt.Errorf("read interfaces of %s: %w", c.name, err)
	}
	return ifs, nil
}

// InterfacesFromOutput merges the output of IPLinkCommand, IPAddrCommand and
// SysClassNetCommand (sys may be empty) into one Interface per link, sorted
// by index. It fails when the outputs disagree on an interface's index or
// MAC address.
func InterfacesFromOutput(link, addr, sys string) ([]Interface, error) {
	links, err := ParseIPLink(link)
	if err != nil {
		return nil, err
	}
	byName := map[string]int{}
	for i, l := range links {
		byName[l.Name] = i
	}
	sysIfs, err := ParseSysClassNet(sys)
	if err != nil {
		return nil, err
	}
	links, err = mergeByName(links, byName, sysIfs, func(l *Interface, s Interface) error {
		if l.Index != s.Index {
			return fmt.Errorf("interface %s: ip says index %d, /sys says %d", l.Name, l.Index, s.Index)
		}
		if l.MAC.String() != s.MAC.String() {
			return fmt.Errorf("interface %s: ip says MAC %s, /sys says %s", l.Name, l.MAC, s.MAC)
		}
		if l.OperState == "" {
			// busybox ip prints no state.
			l.OperState = s.OperState
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	addrs, err := ParseIPAddr(addr)
	if err != nil {
		return nil, err
	}
	links, err = mergeByName(links, byName, addrs, func(l *Interface, a Interface) error {
		if l.Index != a.Index {
			return fmt.Errorf("interface %s: ip link says index %d, ip addr says %d", l.Name, l.Index, a.Index)
		}
		l.IPv4 = append(l.IPv4, a.IPv4...)
		l.IPv6 = append(l.IPv6, a.IPv6...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(links, func(a, b Interface) int { return a.Index - b.Index })
	return links, nil
}

// mergeByName folds more into links: an interface already listed (byName holds its index) is
// passed to combine with its counterpart, a new one (it appeared between two commands) is
// appended and indexed.
func mergeByName(links []Interface, byName map[string]int, more []Interface, combine func(l *Interface, o Interface) error) ([]Interface, error) {
	for _, o := range more {
		i, ok := byName[o.Name]
		if !ok {
			byName[o.Name] = len(links)
			links = append(links, o)
			continue
		}
		if err := combine(&links[i], o); err != nil {
			return nil, err
		}
	}
	return links, nil
}

// InterfaceByName returns the interface called name.
func InterfaceByName(ifs []Interface, name string) (Interface, bool) {
	i := slices.IndexFunc(ifs, func(f Interface) bool { return f.Name == name })
	if i < 0 {
		return Interface{}, false
	}
	return ifs[i], true
}

// InterfaceByMAC returns the interface whose link-layer address is mac.
func InterfaceByMAC(ifs []Interface, mac net.HardwareAddr) (Interface, bool) {
	i := slices.IndexFunc(ifs, func(f Interface) bool { return f.MAC.String() == mac.String() })
	if i < 0 {
		return Interface{}, false
	}
	return ifs[i], true
}

// lineError names the offending line of a command's output.
func lineError(what string, n int, line, format string, args ...any) error {
	return fmt.Errorf("parse %s line %d %q: %s", what, n, line, fmt.Sprintf(format, args...))
}

// fields splits one line of "ip -o" output, where the backslash stands
// for a line break of the multi-line form.
func fields(line string) []string {
	return strings.Fields(strings.ReplaceAll(line, `\`, " "))
}

// parseIndex parses ip's "3:" index field.
func parseIndex(f string) (int, bool) {
	s, ok := strings.CutSuffix(f, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// baseName strips ip's "@peer" suffix ("eth0@if5", "pxecb1@eth1").
func baseName(s string) string {
	name, _, _ := strings.Cut(s, "@")
	return name
}

// linkKeysWithValue are the keys of ip -o link whose next field is their
// value, so that value is never mistaken for a key.
var linkKeysWithValue = map[string]bool{
	"qdisc": true, "master": true, "mode": true, "group": true, "qlen": true,
	"brd": true, "peer": true, "link-netnsid": true, "link-netns": true,
	"altname": true, "alias": true, "permaddr": true, "promiscuity": true,
	"minmtu": true, "maxmtu": true, "numtxqueues": true, "numrxqueues": true,
	"gso_max_size": true, "gso_max_segs": true, "parentbus": true, "parentdev": true,
}

// ParseIPLink parses the output of "ip -o link" as busybox ip and iproute2
// print it. Fields it does not know are skipped.
func ParseIPLink(out string) ([]Interface, error) {
	const what = "ip -o link"
	var ifs []Interface
	seen := map[int]bool{}
	for n, line := range strings.Split(out, "\n") {
		n++
		f := fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, lineError(what, n, line, "want index, name and flags")
		}
		var ifc Interface
		var ok bool
		if ifc.Index, ok = parseIndex(f[0]); !ok {
			return nil, lineError(what, n, line, "index %q is not a positive number and colon", f[0])
		}
		name, ok := strings.CutSuffix(f[1], ":")
		if !ok || baseName(name) == "" {
			return nil, lineError(what, n, line, "name %q does not end in a colon (ip addr output, or not -o?)", f[1])
		}
		ifc.Name = baseName(name)
		flags, hasOpen := strings.CutPrefix(f[2], "<")
		flags, hasClose := strings.CutSuffix(flags, ">")
		if !hasOpen || !hasClose {
			return nil, lineError(what, n, line, "flags %q are not in angle brackets", f[2])
		}
		ifc.Flags = []string{}
		if flags != "" {
			ifc.Flags = strings.Split(flags, ",")
		}
		ifc.Up = slices.Contains(ifc.Flags, "UP")
		hasMTU := false
		for i := 3; i < len(f); i++ {
			key := f[i]
			switch {
			case key == "mtu" && i+1 < len(f):
				i++
				mtu, err := strconv.Atoi(f[i])
				if err != nil || mtu <= 0 {
					return nil, lineError(what, n, line, "mtu %q is not a positive number", f[i])
				}
				ifc.MTU, hasMTU = mtu, true
			case key == "state" && i+1 < len(f):
				i++
				ifc.OperState = strings.ToLower(f[i])
			case key == "link/none":
				// Tunnels without link-layer address print no value.
			case strings.HasPrefix(key, "link/") && i+1 < len(f):
				i++
				mac, err := net.ParseMAC(f[i])
				switch {
				case err == nil:
					ifc.MAC = mac
				case key == "link/ether" || key == "link/loopback":
					return nil, lineError(what, n, line, "%s address %q: %v", key, f[i], err)
				}
				// Other link types (ipip, gre, ...) carry IP addresses.
			case linkKeysWithValue[key] && i+1 < len(f):
				i++
			}
		}
		if !hasMTU {
			return nil, lineError(what, n, line, "no mtu")
		}
		if seen[ifc.Index] {
			return nil, lineError(what, n, line, "index %d listed twice", ifc.Index)
		}
		seen[ifc.Index] = true
		ifs = append(ifs, ifc)
	}
	return ifs, nil
}

// ParseIPAddr parses the output of "ip -o addr" as busybox ip and iproute2
// print it, and returns one Interface per interface named, in order of
// first appearance, with only Index, Name, IPv4 and IPv6 set.
func ParseIPAddr(out string) ([]Interface, error) {
	const what = "ip -o addr"
	var ifs []Interface
	pos := map[string]int{}
	for n, line := range strings.Split(out, "\n") {
		n++
		f := fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, lineError(what, n, line, "want index, name and family")
		}
		index, ok := parseIndex(f[0])
		if !ok {
			return nil, lineError(what, n, line, "index %q is not a positive number and colon", f[0])
		}
		if strings.HasSuffix(f[1], ":") {
			return nil, lineError(what, n, line, "name %q ends in a colon: this is ip link output, or ip addr without -o", f[1])
		}
		name := baseName(f[1])
		family := f[2]
		if strings.HasPrefix(family, "link/") {
			// Some ip versions list the link layer too; ParseIPLink reads it.
			continue
		}
		if family != "inet" && family != "inet6" {
			return nil, lineError(what, n, line, "family %q is neither inet nor inet6", family)
		}
		if len(f) < 4 {
			return nil, lineError(what, n, line, "no address")
		}
		prefix, err := parseAddr(f[3:])
		if err != nil {
			return nil, lineError(what, n, line, "%v", err)
		}
		if prefix.Addr().Is4() != (family == "inet") {
			return nil, lineError(what, n, line, "address %s is not %s", prefix, family)
		}
		i, ok := pos[name]
		if !ok {
			i = len(ifs)
			pos[name] = i
			ifs = append(ifs, Interface{Index: index, Name: name})
		}
		if ifs[i].Index != index {
			return nil, lineError(what, n, line, "%s has index %d, earlier %d", name, index, ifs[i].Index)
		}
		if family == "inet" {
			ifs[i].IPv4 = append(ifs[i].IPv4, prefix)
		} else {
			ifs[i].IPv6 = append(ifs[i].IPv6, prefix)
		}
	}
	return ifs, nil
}

// parseAddr parses "10.0.2.15/24", or a point-to-point address
// "10.9.0.1 peer 10.9.0.2/32" whose prefix length follows the peer.
func parseAddr(f []string) (netip.Prefix, error) {
	if strings.Contains(f[0], "/") {
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("address %q: %w", f[0], err)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address %q: %w", f[0], err)
	}
	if len(f) >= 3 && f[1] == "peer" {
		peer, err := netip.ParsePrefix(f[2])
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("peer %q: %w", f[2], err)
		}
		return netip.PrefixFrom(a, peer.Bits()), nil
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseSysClassNet parses the output of SysClassNetCommand. Its Interfaces
// carry Index, Name, MAC, Up, OperState and MTU.
func ParseSysClassNet(out string) ([]Interface, error) {
	const what = "/sys/class/net"
	var ifs []Interface
	for n, line := range strings.Split(out, "\n") {
		n++
		if strings.TrimSpace(line) == "" {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return nil, lineError(what, n, line, "field %q is not key=value", f)
			}
			kv[k] = v
		}
		for _, k := range []string{"name", "ifindex", "address", "operstate", "flags", "mtu"} {
			if _, ok := kv[k]; !ok {
				return nil, lineError(what, n, line, "no %s", k)
			}
		}
		var ifc Interface
		if ifc.Name = kv["name"]; ifc.Name == "" {
			return nil, lineError(what, n, line, "empty name")
		}
		var err error
		if ifc.Index, err = strconv.Atoi(kv["ifindex"]); err != nil || ifc.Index <= 0 {
			return nil, lineError(what, n, line, "ifindex %q is not a positive number", kv["ifindex"])
		}
		if a := kv["address"]; a != "" {
			if ifc.MAC, err = net.ParseMAC(a); err != nil {
				return nil, lineError(what, n, line, "address %q: %v", a, err)
			}
		}
		if ifc.OperState = kv["operstate"]; ifc.OperState == "" {
			return nil, lineError(what, n, line, "empty operstate")
		}
		flags, err := strconv.ParseUint(kv["flags"], 0, 32)
		if err != nil {
			return nil, lineError(what, n, line, "flags %q are not a number", kv["flags"])
		}
		ifc.Up = flags&iffUp != 0
		if ifc.MTU, err = strconv.Atoi(kv["mtu"]); err != nil || ifc.MTU <= 0 {
			return nil, lineError(what, n, line, "mtu %q is not a positive number", kv["mtu"])
		}
		ifs = append(ifs, ifc)
	}
	return ifs, nil
}
