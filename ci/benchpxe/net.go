package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pxe-conformance/pxe-conformance/framework/lab"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

// Addresses inside the benchmark's namespaces; none exists anywhere else. 198.18.0.0/15 is
// reserved for network benchmarks (RFC 2544), so nothing real can be behind it.
var (
	subnet      = netip.MustParsePrefix("198.18.0.0/20")
	oursIP      = netip.MustParseAddr("198.18.0.1")
	dnsmasqAddr = netip.MustParsePrefix("198.18.0.2/20")
	hubAddr     = netip.MustParsePrefix("198.18.0.3/20") // the bridge's own, which nothing uses
	clientAddr  = netip.MustParsePrefix("198.18.0.10/20")
	firstLease  = netip.MustParseAddr("198.18.1.0")
)

var (
	oursTFTP    = netip.AddrPortFrom(oursIP, 69).String()
	dnsmasqTFTP = netip.AddrPortFrom(dnsmasqAddr.Addr(), 69).String()
	oursHTTP    = netip.AddrPortFrom(oursIP, 8080).String()
)

// Interface names inside the namespaces.
const (
	bridge    = "bpbr"
	oursIf    = "bpours"
	dnsmasqIf = "bpdns"
	clientIf  = "bpcli"
)

// benchNet is the hub (the bridge), and the namespaces of ours, dnsmasq and the clients, each
// joined to the bridge by a veth pair: both servers' packets take the same path to the
// clients, as a PXE server pod's take through its veth to the node's bridge. (With dnsmasq on
// the bridge's own address, its packets skipped a veth and the bridge's forwarding, which a
// server's sends pay for in the kernel: it was charged about a tenth less CPU for them.)
type benchNet struct {
	hub, ours, dnsmasq, client *lab.Namespace
}

// dnsmasqSegment is where dnsmasq serves: its own namespace, its veth and address.
func (n *benchNet) dnsmasqSegment() *lab.Segment {
	return &lab.Segment{NS: n.dnsmasq, Bridge: dnsmasqIf, ServerAddr: dnsmasqAddr}
}

// newBenchNet creates the namespaces and links; it returns what it created even on error.
func newBenchNet(ctx context.Context) (*benchNet, error) {
	n := &benchNet{}
	var err error
	for _, ns := range []struct {
		p    **lab.Namespace
		name string
	}{{&n.hub, "bp-hub"}, {&n.ours, "bp-ours"}, {&n.dnsmasq, "bp-dns"}, {&n.client, "bp-cli"}} {
		if *ns.p, err = lab.CreateNamespace(ctx, ns.name); err != nil {
			return n, err
		}
	}
	if _, err = lab.CreateSegment(ctx, n.hub, bridge, hubAddr); err != nil {
		return n, err
	}
	for _, l := range []struct {
		ns   *lab.Namespace
		name string
		addr netip.Prefix
	}{{n.ours, oursIf, netip.PrefixFrom(oursIP, subnet.Bits())}, {n.dnsmasq, dnsmasqIf, dnsmasqAddr}, {n.client, clientIf, clientAddr}} {
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
	for _, ns := range []*lab.Namespace{n.client, n.dnsmasq, n.ours, n.hub} {
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

// startOursInProcess starts framework/pxe in this process, for -cpuprofile to see it.
func startOursInProcess(ctx context.Context, n *benchNet, root string, clients int) (*pxe.Server, error) {
	res := make([]pxe.Reservation, clients)
	for i := range res {
		res[i] = pxe.Reservation{MAC: reservationMAC(i), IP: reservationIP(i)}
	}
	return pxe.Start(ctx, pxe.Config{
		Interface: oursIf, ServerIP: oursIP, Subnet: subnet, Reservations: res, Root: root,
		Boot:     pxe.Boot{Kernel: payloadName, Initrd: initrdName},
		HTTPAddr: oursHTTP, TFTPAddr: oursTFTP, Netns: n.ours.Path(),
	})
}

// oursProcess is our server as its own process (fixtures/pxe-server), as dnsmasq is: in the
// benchmark's process it would share the Go scheduler with the hundred client goroutines.
type oursProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// startOurs builds fixtures/pxe-server into dir and runs it in the ours namespace with a
// reservation for each DHCP client.
func startOurs(ctx context.Context, n *benchNet, dir, root string, clients int) (*oursProcess, error) {
	bin := filepath.Join(dir, "pxe-server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./fixtures/pxe-server")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("run %q: %w\n%s", strings.Join(build.Args, " "), err, out)
	}
	type reservation struct {
		MAC string `json:"mac"`
		IP  string `json:"ip"`
	}
	res := make([]reservation, clients)
	for i := range res {
		res[i] = reservation{MAC: reservationMAC(i).String(), IP: reservationIP(i).String()}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	resFile := filepath.Join(dir, "reservations.json")
	if err := os.WriteFile(resFile, b, 0o644); err != nil {
		return nil, err
	}
	args := []string{
		"--interface=" + oursIf, "--server-ip=" + oursIP.String(), "--subnet=" + subnet.String(),
		"--root=" + root, "--kernel=" + payloadName, "--initrd=" + initrdName,
		"--http-addr=" + oursHTTP, "--tftp-addr=" + oursTFTP,
		"--reservations-file=" + resFile, "--netns=" + n.ours.Path(), "--log-level=warn",
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", bin, strings.Join(args, " "), err)
	}
	p := &oursProcess{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// stop ends our server with SIGTERM, as its pod would be, and kills it if it lingers.
func (p *oursProcess) stop(ctx context.Context) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("pxe-server: %w", err)
		}
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("pxe-server did not stop on SIGTERM: %w", ctx.Err())
	}
}
