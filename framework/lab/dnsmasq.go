package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dnsmasq is dnsmasq serving the same payload over DHCP + TFTP on a segment: the reference PXE
// server the benchmark compares ours against. It is tuned as far as dnsmasq allows: no ping
// before offering, iPXE's ProxyDHCP wait switched off with option 175.176, router advertisements
// so iPXE does not wait for IPv6, and one static reservation.
type Dnsmasq struct {
	dir string
	cmd *exec.Cmd
	log *lockedLog
}

// lockedLog collects dnsmasq's output while the lab reads it.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// DnsmasqConfig is what dnsmasq serves.
type DnsmasqConfig struct {
	// MAC and IP are the one reservation.
	MAC net.HardwareAddr
	IP  netip.Addr
	// Kernel and Initrd are files to serve over TFTP; Cmdline is the kernel command line.
	Kernel, Initrd, Cmdline string
	// ExtraArgs are appended to dnsmasq's command line, e.g. --tftp-max for a benchmark.
	ExtraArgs []string
}

// StartDnsmasq runs dnsmasq in the segment's namespace on its bridge (or on whatever interface
// seg.Bridge names, such as a veth of a namespace of dnsmasq's own) and address. Router
// advertisements need a global IPv6 prefix on that interface, so a unique-local one is added
// to it.
func StartDnsmasq(ctx context.Context, seg *Segment, cfg DnsmasqConfig) (*Dnsmasq, error) {
	dir, err := os.MkdirTemp("", "pxec-dnsmasq-")
	if err != nil {
		return nil, err
	}
	d := &Dnsmasq{dir: dir, log: &lockedLog{}}
	if err := d.prepare(ctx, seg, cfg); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	prefix := seg.ServerAddr.Masked()
	args := append(seg.NS.Wrap(), "dnsmasq",
		"--keep-in-foreground", "--log-facility=-", "--log-dhcp",
		"--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
		"--interface="+seg.Bridge, "--bind-interfaces",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"),
		fmt.Sprintf("--dhcp-range=%s,static,%s", prefix.Addr(), net.IP(net.CIDRMask(prefix.Bits(), 32))),
		fmt.Sprintf("--dhcp-host=%s,%s", cfg.MAC, cfg.IP),
		"--dhcp-authoritative", "--no-ping",
		"--dhcp-option=encap:175,176,1b",
		"--dhcp-match=set:ipxe,175",
		"--dhcp-boot=tag:ipxe,boot.ipxe",
		"--enable-tftp", "--tftp-root="+filepath.Join(dir, "tftp"),
		"--enable-ra", "--dhcp-range=::,constructor:"+seg.Bridge+",ra-only",
		// Router lifetime 0: the advertisements end iPXE's wait for IPv6 but offer no route.
		"--ra-param="+seg.Bridge+",10,0",
	)
	args = append(args, cfg.ExtraArgs...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = d.log
	cmd.Stderr = d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start dnsmasq: %s: %w", strings.Join(args, " "), err)
	}
	d.cmd = cmd
	// dnsmasq logs "started" before it serves; wait for it (or for it to die).
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.log.String(), "TFTP root") {
			return d, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = d.Stop(ctx)
	return nil, fmt.Errorf("start dnsmasq: not ready within 5 s: %s\n%s", strings.Join(args, " "), d.log.String())
}

func (d *Dnsmasq) prepare(ctx context.Context, seg *Segment, cfg DnsmasqConfig) error {
	tftp := filepath.Join(d.dir, "tftp")
	if err := os.MkdirAll(tftp, 0o755); err != nil {
		return err
	}
	for _, f := range []string{cfg.Kernel, cfg.Initrd} {
		if err := os.Symlink(f, filepath.Join(tftp, filepath.Base(f))); err != nil {
			return err
		}
	}
	script := fmt.Sprintf("#!ipxe\nkernel tftp://${next-server}/%s initrd=%s %s\ninitrd tftp://${next-server}/%s\nboot\n",
		filepath.Base(cfg.Kernel), filepath.Base(cfg.Initrd), cfg.Cmdline, filepath.Base(cfg.Initrd))
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		return err
	}
	// A unique-local prefix for router advertisements only; no DHCPv6 is offered.
	if err := seg.NS.Run(ctx, "ip", "-6", "addr", "replace", "fd70:7865:6300::1/64", "dev", seg.Bridge, "nodad"); err != nil {
		return fmt.Errorf("start dnsmasq: %w", err)
	}
	return nil
}

// PID is dnsmasq's process ID (ip netns exec replaces itself with dnsmasq).
func (d *Dnsmasq) PID() int { return d.cmd.Process.Pid }

// Log is what dnsmasq has printed so far.
func (d *Dnsmasq) Log() string { return d.log.String() }

// Stop ends dnsmasq and removes its files.
func (d *Dnsmasq) Stop(ctx context.Context) error {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- d.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = d.cmd.Process.Kill()
			<-done
		case <-ctx.Done():
			_ = d.cmd.Process.Kill()
			<-done
		}
	}
	return os.RemoveAll(d.dir)
}
