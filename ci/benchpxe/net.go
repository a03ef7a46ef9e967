package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pxe-conformance/pxe-conformance/framework/lab"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

// Addresses inside the benchmark's namespaces; none exists anywhere else.
var (
	subnet      = netip.MustParsePrefix("10.241.0.0/20")
	oursIP      = netip.MustParseAddr("10.241.0.1")
	dnsmasqAddr = netip.MustParsePrefix("10.241.0.2/20")
	clientAddr  = netip.MustParsePrefix("10.241.0.10/20")
	firstLease  = netip.MustParseAddr("10.241.1.0")
)

var (
	oursTFTP    = netip.AddrPortFrom(oursIP, 69).String()
	dnsmasqTFTP = netip.AddrPortFrom(dnsmasqAddr.Addr(), 69).String()
	oursHTTP    = netip.AddrPortFrom(oursIP, 8080).String()
)

// Interface names inside the namespaces.
const (
	bridge   = "bpbr"
	oursIf   = "bpours"
	clientIf = "bpcli"
)

// benchNet is the hub (bridge and dnsmasq), ours and the clients' namespaces.
type benchNet struct {
	hub, ours, client *lab.Namespace
	seg               *lab.Segment
}

// newBenchNet creates the namespaces and links; it returns what it created even on error.
func newBenchNet(ctx context.Context) (*benchNet, error) {
	n := &benchNet{}
	var err error
	for _, ns := range []struct {
		p    **lab.Namespace
		name string
	}{{&n.hub, "bp-hub"}, {&n.ours, "bp-ours"}, {&n.client, "bp-cli"}} {
		if *ns.p, err = lab.CreateNamespace(ctx, ns.name); err != nil {
			return n, err
		}
	}
	if n.seg, err = lab.CreateSegment(ctx, n.hub, bridge, dnsmasqAddr); err != nil {
		return n, err
	}
	for _, l := range []struct {
		ns   *lab.Namespace
		name string
		addr netip.Prefix
	}{{n.ours, oursIf, netip.PrefixFrom(oursIP, subnet.Bits())}, {n.client, clientIf, clientAddr}} {
		port := l.name + "0"
		steps := [][]string{
			{"ip", "link", "add", port, "type", "veth", "peer", "name", l.name, "netns", l.ns.Name},
			{"ip", "link", "set", port, "master", bridge},
			{"ip", "link", "set", port, "up"},
		}
		for _, s := range steps {
			if err := n.hub.Run(ctx, s...); err != nil {
				return n, fmt.Errorf("link %s: %w", l.name, err)
			}
		}
		for _, s := range [][]string{
			{"ip", "addr", "add", l.addr.String(), "dev", l.name},
			// The DHCP clients' replies go to MACs other than the interface's own.
			{"ip", "link", "set", l.name, "promisc", "on"},
			{"ip", "link", "set", l.name, "up"},
		} {
			if err := l.ns.Run(ctx, s...); err != nil {
				return n, fmt.Errorf("link %s: %w", l.name, err)
			}
		}
	}
	return n, nil
}

// remove deletes the namespaces, and with them every link and address.
func (n *benchNet) remove(ctx context.Context) error {
	var errs []error
	for _, ns := range []*lab.Namespace{n.client, n.ours, n.hub} {
		if ns != nil {
			errs = append(errs, ns.Delete(ctx))
		}
	}
	return errors.Join(errs...)
}

// reservationMAC is client i's MAC: locally administered, unicast.
func reservationMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xbe, 0x0c, byte(i >> 16), byte(i >> 8), byte(i)}
}

// reservationIP is client i's fixed address.
func reservationIP(i int) netip.Addr {
	a := firstLease.As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// startOurs starts our server in its namespace with a reservation for each DHCP client.
func startOurs(ctx context.Context, n *benchNet, root string, clients int) (*pxe.Server, error) {
	res := make([]pxe.Reservation, clients)
	for i := range res {
		res[i] = pxe.Reservation{MAC: reservationMAC(i), IP: reservationIP(i)}
	}
	return pxe.Start(ctx, pxe.Config{
		Interface:    oursIf,
		ServerIP:     oursIP,
		Subnet:       subnet,
		Reservations: res,
		Root:         root,
		Boot:         pxe.Boot{Kernel: payloadName, Initrd: initrdName},
		HTTPAddr:     oursHTTP,
		TFTPAddr:     oursTFTP,
		Netns:        n.ours.Path(),
	})
}
