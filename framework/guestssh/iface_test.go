package guestssh

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func readSample(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The testdata directories hold what busybox 1.35 (Debian 12's
// busybox-static) and iproute2 6.1 printed in one network namespace set
// up like the guest and then some: eth0 up with DHCP-style, secondary and
// IPv6 addresses, its veth peer in a named namespace; eth1 down without
// addresses, its peer in a bridge with an altname; a point-to-point address
// on a link with MTU 1400; a veth whose peer is in an unnamed namespace
// (link-netnsid).
func wantCapturedInterfaces(t *testing.T, tool string) []Interface {
	// busybox sets M-DOWN where iproute2 did not, on links it read later.
	eth0Flags := []string{"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}
	q0Flags := []string{"BROADCAST", "MULTICAST"}
	if tool == "busybox-1.35" {
		eth0Flags = append(eth0Flags, "M-DOWN")
		q0Flags = append(q0Flags, "M-DOWN")
	}
	return []Interface{
		{Index: 1, Name: "lo", MAC: mac(t, "00:00:00:00:00:00"), Flags: []string{"LOOPBACK", "UP", "LOWER_UP"}, Up: true, OperState: "unknown", MTU: 65536,
			IPv4: prefixes(t, "127.0.0.1/8"), IPv6: prefixes(t, "::1/128")},
		{Index: 3, Name: "eth0", MAC: mac(t, "52:54:00:12:34:56"), Flags: eth0Flags, Up: true, OperState: "up", MTU: 1500,
			IPv4: prefixes(t, "10.0.2.2/24", "10.0.2.99/24"), IPv6: prefixes(t, "2001:db8::2/64", "fe80::5054:ff:fe12:3456/64")},
		{Index: 4, Name: "pxecb1", MAC: mac(t, "02:00:00:00:00:b1"), Flags: []string{"NO-CARRIER", "BROADCAST", "MULTICAST", "UP", "M-DOWN"}, Up: true, OperState: "lowerlayerdown", MTU: 1500},
		{Index: 5, Name: "eth1", MAC: mac(t, "de:00:00:00:00:de"), Flags: []string{"BROADCAST", "MULTICAST"}, OperState: "down", MTU: 1500},
		{Index: 6, Name: "pxecbr0", MAC: mac(t, "02:00:00:00:00:b0"), Flags: []string{"NO-CARRIER", "BROADCAST", "MULTICAST", "UP"}, Up: true, OperState: "down", MTU: 1500},
		{Index: 7, Name: "pxecd1", MAC: mac(t, "02:00:00:00:00:d1"), Flags: []string{"BROADCAST", "MULTICAST", "M-DOWN"}, OperState: "down", MTU: 1500},
		{Index: 8, Name: "pxecd0", MAC: mac(t, "02:00:00:00:00:d0"), Flags: []string{"BROADCAST", "MULTICAST", "M-DOWN"}, OperState: "down", MTU: 1400,
			IPv4: prefixes(t, "10.9.0.1/32")},
		{Index: 10, Name: "pxecq0", MAC: mac(t, "02:00:00:00:00:e0"), Flags: q0Flags, OperState: "down", MTU: 1500},
	}
}

func TestInterfacesFromOutputMergesCapturedOutput(t *testing.T) {
	for _, tool := range []string{"busybox-1.35", "iproute2-6.1"} {
		t.Run(tool, func(t *testing.T) {
			got, err := InterfacesFromOutput(readSample(t, tool, "ip-o-link.txt"), readSample(t, tool, "ip-o-addr.txt"), readSample(t, tool, "sys-class-net.txt"))
			if err != nil {
				t.Fatal(err)
			}
			want := wantCapturedInterfaces(t, tool)
			if len(got) != len(want) {
				t.Fatalf("got %d interfaces, want %d: %+v", len(got), len(want), got)
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("interface %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestParseIPLinkWithoutSysLeavesBusyboxStateEmpty(t *testing.T) {
	ifs, err := ParseIPLink(readSample(t, "busybox-1.35", "ip-o-link.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.OperState != "" {
			t.Errorf("%s: OperState %q from busybox ip, which prints none", ifc.Name, ifc.OperState)
		}
	}
}

func TestParseIPLinkLines(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Interface
	}{
		{
			name: "busybox guest eth1 down",
			line: `3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop qlen 1000\    link/ether de:00:00:00:00:de brd ff:ff:ff:ff:ff:ff`,
			want: Interface{Index: 3, Name: "eth1", MAC: mac(t, "de:00:00:00:00:de"), Flags: []string{"BROADCAST", "MULTICAST"}, MTU: 1500},
		},
		{
			name: "busybox guest eth0 up",
			line: `2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast qlen 1000\    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff`,
			want: Interface{Index: 2, Name: "eth0", MAC: mac(t, "52:54:00:12:34:56"), Flags: []string{"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}, Up: true, MTU: 1500},
		},
		{
			name: "iproute2 pod interface with link-netnsid",
			line: `3: eth0@if2: <NO-CARRIER,BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state LOWERLAYERDOWN mode DEFAULT group default qlen 1000\    link/ether 1a:40:39:b6:5b:e3 brd ff:ff:ff:ff:ff:ff link-netnsid 0`,
			want: Interface{Index: 3, Name: "eth0", MAC: mac(t, "1a:40:39:b6:5b:e3"), Flags: []string{"NO-CARRIER", "BROADCAST", "MULTICAST", "UP"}, Up: true, OperState: "lowerlayerdown", MTU: 1500},
		},
		{
			name: "fields on one line without the -o backslash",
			line: `7: pxecbr0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000 link/ether 02:00:00:00:00:b0 brd ff:ff:ff:ff:ff:ff`,
			want: Interface{Index: 7, Name: "pxecbr0", MAC: mac(t, "02:00:00:00:00:b0"), Flags: []string{"BROADCAST", "MULTICAST", "UP", "LOWER_UP"}, Up: true, OperState: "up", MTU: 1500},
		},
		{
			name: "tunnel without link-layer address",
			line: `9: tun0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UNKNOWN mode DEFAULT group default qlen 500\    link/none `,
			want: Interface{Index: 9, Name: "tun0", Flags: []string{"POINTOPOINT", "MULTICAST", "NOARP", "UP", "LOWER_UP"}, Up: true, OperState: "unknown", MTU: 1500},
		},
		{
			name: "ipip tunnel with IPv4 link address",
			line: `4: tunl0@NONE: <NOARP> mtu 1480 qdisc noop state DOWN mode DEFAULT group default qlen 1000\    link/ipip 0.0.0.0 brd 0.0.0.0`,
			want: Interface{Index: 4, Name: "tunl0", Flags: []string{"NOARP"}, OperState: "down", MTU: 1480},
		},
		{
			name: "no flags",
			line: `5: x: <> mtu 1500 qdisc noop\    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff`,
			want: Interface{Index: 5, Name: "x", MAC: mac(t, "02:00:00:00:00:01"), Flags: []string{}, MTU: 1500},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIPLink(tt.line + "\n")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("ParseIPLink:\n got %+v\nwant [%+v]", got, tt.want)
			}
		})
	}
}

func TestParseIPAddrLines(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []Interface
	}{
		{
			name: "busybox guest DHCP address",
			out:  `2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0\       valid_lft forever preferred_lft forever`,
			want: []Interface{{Index: 2, Name: "eth0", IPv4: prefixes(t, "10.0.2.15/24")}},
		},
		{
			name: "busybox IPv6 with unnamed flags",
			out:  `3: eth0    inet6 2001:db8::2/64 scope global flags 02 \       valid_lft forever preferred_lft forever`,
			want: []Interface{{Index: 3, Name: "eth0", IPv6: prefixes(t, "2001:db8::2/64")}},
		},
		{
			name: "iproute2 tentative address",
			out:  `3: pxeca0    inet6 fd00:1::5/64 scope global tentative \       valid_lft forever preferred_lft forever`,
			want: []Interface{{Index: 3, Name: "pxeca0", IPv6: prefixes(t, "fd00:1::5/64")}},
		},
		{
			name: "point-to-point address takes the peer's prefix length",
			out:  `8: pxecd0    inet 10.9.0.1 peer 10.9.0.0/30 scope global pxecd0\       valid_lft forever preferred_lft forever`,
			want: []Interface{{Index: 8, Name: "pxecd0", IPv4: prefixes(t, "10.9.0.1/30")}},
		},
		{
			name: "address without prefix length",
			out:  `8: pxecd0    inet 10.9.0.1 scope global pxecd0`,
			want: []Interface{{Index: 8, Name: "pxecd0", IPv4: prefixes(t, "10.9.0.1/32")}},
		},
		{
			name: "link lines skipped",
			out:  "2: eth0    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff\n2: eth0    inet 10.0.2.15/24 scope global eth0",
			want: []Interface{{Index: 2, Name: "eth0", IPv4: prefixes(t, "10.0.2.15/24")}},
		},
		{
			name: "empty output",
			out:  "\n",
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIPAddr(tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseIPAddr:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParsersNameTheMalformedLine(t *testing.T) {
	good := `1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00`
	goodAddr := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever`
	goodSys := "name=lo ifindex=1 address=00:00:00:00:00:00 operstate=unknown flags=0x9 mtu=65536"
	tests := []struct {
		name  string
		parse func(string) ([]Interface, error)
		bad   string
		why   string
	}{
		{"link garbage", ParseIPLink, "garbage", "want index, name and flags"},
		{"link index not a number", ParseIPLink, `x: eth0: <UP> mtu 1500`, `index "x:"`},
		{"link name without colon", ParseIPLink, `2: eth0 <BROADCAST> mtu 1500`, `name "eth0"`},
		{"link ip addr output", ParseIPLink, `2: eth0    inet 10.0.2.15/24 brd 10.0.2.255 scope global eth0`, `name "eth0"`},
		{"link unterminated flags", ParseIPLink, `2: eth0: <UP mtu 1500`, "angle brackets"},
		{"link unopened flags", ParseIPLink, `2: eth0: UP> mtu 1500`, "angle brackets"},
		{"link bad mtu", ParseIPLink, `2: eth0: <UP> mtu abc qdisc noop`, `mtu "abc"`},
		{"link no mtu", ParseIPLink, `2: eth0: <UP> qdisc noop`, "no mtu"},
		{"link bad MAC", ParseIPLink, `2: eth0: <UP> mtu 1500\    link/ether 52:54:00:12:34 brd ff:ff:ff:ff:ff:ff`, `link/ether address "52:54:00:12:34"`},
		{"link multi-line form", ParseIPLink, `    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff`, `index "link/ether"`},
		{"link duplicate index", ParseIPLink, strings.Replace(good, "lo:", "lo2:", 1), "index 1 listed twice"},
		{"addr garbage", ParseIPAddr, "inet", "want index, name and family"},
		{"addr bad address", ParseIPAddr, `2: eth0    inet 10.0.2.300/24 brd 10.0.2.255 scope global eth0`, `address "10.0.2.300/24"`},
		{"addr family mismatch", ParseIPAddr, `2: eth0    inet6 10.0.2.2/24 scope global eth0`, "is not inet6"},
		{"addr unknown family", ParseIPAddr, `2: eth0    ipx 1234 scope global eth0`, `family "ipx"`},
		{"addr without -o", ParseIPAddr, `2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast qlen 1000`, "without -o"},
		{"addr no address", ParseIPAddr, `2: eth0    inet`, "no address"},
		{"addr bad peer", ParseIPAddr, `8: pxecd0    inet 10.9.0.1 peer 10.9.0.2/99 scope global pxecd0`, `peer "10.9.0.2/99"`},
		{"addr index changes", ParseIPAddr, `7: lo    inet 127.0.0.2/8 scope host lo`, "lo has index 7, earlier 1"},
		{"sys not key=value", ParseSysClassNet, "eth0 3 up", `field "eth0"`},
		{"sys missing field", ParseSysClassNet, "name=eth0 ifindex=3 address=52:54:00:12:34:56 operstate=up mtu=1500", "no flags"},
		{"sys bad flags", ParseSysClassNet, "name=eth0 ifindex=3 address=52:54:00:12:34:56 operstate=up flags=up mtu=1500", `flags "up"`},
		{"sys bad index", ParseSysClassNet, "name=eth0 ifindex= address=52:54:00:12:34:56 operstate=up flags=0x1003 mtu=1500", `ifindex ""`},
		{"sys bad address", ParseSysClassNet, "name=eth0 ifindex=3 address=nope operstate=up flags=0x1003 mtu=1500", `address "nope"`},
		{"sys empty operstate", ParseSysClassNet, "name=eth0 ifindex=3 address= operstate= flags=0x1003 mtu=1500", "empty operstate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := good
			switch {
			case strings.HasPrefix(tt.name, "addr"):
				first = goodAddr
			case strings.HasPrefix(tt.name, "sys"):
				first = goodSys
			}
			// The bad line is line 3, after a good line and an empty one.
			_, err := tt.parse(first + "\n\n" + tt.bad + "\n")
			if err == nil {
				t.Fatalf("parsed %q without error", tt.bad)
			}
			for _, want := range []string{"line 3", tt.bad, tt.why} {
				if !strings.Contains(err.Error(), strings.ReplaceAll(want, `\`, `\\`)) && !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestInterfacesFromOutputRejectsDisagreement(t *testing.T) {
	link := `3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop qlen 1000\    link/ether de:00:00:00:00:de brd ff:ff:ff:ff:ff:ff`
	tests := []struct {
		name, addr, sys, why string
	}{
		{"sys index", "", "name=eth1 ifindex=4 address=de:00:00:00:00:de operstate=down flags=0x1002 mtu=1500", "ip says index 3, /sys says 4"},
		{"sys MAC", "", "name=eth1 ifindex=3 address=de:00:00:00:00:df operstate=down flags=0x1002 mtu=1500", "ip says MAC de:00:00:00:00:de, /sys says de:00:00:00:00:df"},
		{"addr index", `4: eth1    inet 10.0.2.15/24 scope global eth1`, "", "ip link says index 3, ip addr says 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := InterfacesFromOutput(link, tt.addr, tt.sys)
			if err == nil || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("InterfacesFromOutput = %v, want an error saying %q", err, tt.why)
			}
		})
	}
}

func TestInterfaceLookups(t *testing.T) {
	ifs := wantCapturedInterfaces(t, "iproute2-6.1")
	if got, ok := InterfaceByMAC(ifs, mac(t, "DE:00:00:00:00:DE")); !ok || got.Name != "eth1" {
		t.Errorf("InterfaceByMAC = %v, %v; want eth1", got.Name, ok)
	}
	if got, ok := InterfaceByName(ifs, "eth0"); !ok || got.Index != 3 {
		t.Errorf("InterfaceByName = %v, %v; want index 3", got.Index, ok)
	}
	if _, ok := InterfaceByName(ifs, "eth9"); ok {
		t.Errorf("InterfaceByName found eth9")
	}
	if _, ok := InterfaceByMAC(ifs, mac(t, "02:00:00:00:00:99")); ok {
		t.Errorf("InterfaceByMAC found an absent MAC")
	}
}
