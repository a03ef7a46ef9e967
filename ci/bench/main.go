// Command bench measures how long PXE boot costs on top of booting the same payload directly.
// It boots the lab's guest payload three ways, three times each, and times each boot from QEMU's
// start to "SSH verified" (an SSH session with the host key pinned from the console ran a
// command):
//
//   - direct: QEMU loads the kernel and initramfs itself (-kernel/-initrd), the floor;
//   - dnsmasq: PXE from dnsmasq over DHCP + TFTP, tuned (no ping, option 175.176, router
//     advertisements), the reference;
//   - ours: PXE from framework/pxe over DHCP + HTTP.
//
// Boots go round-robin over the methods, so load that changes during the run weighs on each alike.
// It prints each boot, the machine's load average before and after, and a closing line of medians:
//
//	direct=<s> dnsmasq=<s> ours=<s> overhead=<ours-direct> ratio=<ours/dnsmasq>
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/lab"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

func main() {
	boots := flag.Int("boots", 3, "boots per method")
	fwFlag := flag.String("firmware", "bios", "firmware: bios or efi")
	flag.Parse()
	fw := firmware.Firmware(*fwFlag)
	if fw != firmware.BIOS && fw != firmware.EFI {
		fail(2, "--firmware %q: want bios or efi", *fwFlag)
	}
	if *boots < 1 {
		fail(2, "--boots %d: want at least 1", *boots)
	}
	if os.Geteuid() != 0 {
		fail(2, "the benchmark needs root: it creates a network namespace, a bridge and tap devices")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := lab.Sweep(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench: sweeping namespaces of killed runs:", err)
	}
	if err := run(ctx, fw, *boots); err != nil {
		fail(1, "%v", err)
	}
}

type method struct {
	name string
	boot func(ctx context.Context, l *lab.Lab, gc lab.GuestConfig) (time.Duration, error)
}

func run(ctx context.Context, fw firmware.Firmware, boots int) error {
	payload, err := bootimage.Build(ctx, bootimage.Config{})
	if err != nil {
		return err
	}
	accel, why, err := qemu.DetectAccel(ctx, payload.Kernel)
	if err != nil {
		return err
	}
	fmt.Printf("bench: %s firmware, %d boots per method; accelerator: %s\n", fw, boots, why)
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("bench: load average before: %s", load)
	}
	mac, _ := net.ParseMAC(settings.DefaultMAC)
	methods := []method{
		{"direct", bootDirect},
		{"dnsmasq", bootDnsmasq},
		{"ours", bootOurs},
	}
	// Round-robin over the methods, so a change in the machine's load during the run weighs on
	// every method alike.
	times := map[string][]float64{}
	for i := range boots {
		for _, m := range methods {
			d, err := oneBoot(ctx, payload, m, lab.GuestConfig{Name: fmt.Sprintf("%s-%d", m.name, i), MAC: mac, Firmware: fw, Accel: accel})
			if err != nil {
				return fmt.Errorf("%s boot %d: %w", m.name, i+1, err)
			}
			fmt.Printf("bench: %-8s boot %d: SSH verified %.2fs after QEMU started\n", m.name, i+1, d.Seconds())
			times[m.name] = append(times[m.name], d.Seconds())
		}
	}
	medians := map[string]float64{}
	for name, ts := range times {
		slices.Sort(ts)
		medians[name] = ts[len(ts)/2]
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("bench: load average after: %s", load)
	}
	fmt.Printf("direct=%.2f dnsmasq=%.2f ours=%.2f overhead=%.2f ratio=%.2f\n",
		medians["direct"], medians["dnsmasq"], medians["ours"],
		medians["ours"]-medians["direct"], medians["ours"]/medians["dnsmasq"])
	return nil
}

// oneBoot runs one boot in a lab of its own, so no state carries over between boots.
func oneBoot(ctx context.Context, payload *bootimage.Payload, m method, gc lab.GuestConfig) (time.Duration, error) {
	l, err := lab.New(lab.Config{Payload: payload, Allow: []net.HardwareAddr{gc.MAC}})
	if err != nil {
		return 0, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.Stop(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}()
	if err := l.Connect(ctx); err != nil {
		return 0, err
	}
	c, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	return m.boot(c, l, gc)
}

func bootDirect(ctx context.Context, l *lab.Lab, gc lab.GuestConfig) (time.Duration, error) {
	gc.Direct = true
	return sshVerified(ctx, l, gc, func(g *lab.Guest) string { return g.DirectNonce })
}

func bootOurs(ctx context.Context, l *lab.Lab, gc lab.GuestConfig) (time.Duration, error) {
	if err := l.StartPXE(ctx); err != nil {
		return 0, err
	}
	started := time.Now()
	d, err := sshVerified(ctx, l, gc, nil)
	if err == nil {
		fmt.Println("bench: ours     phases:", phases(l.PXE.Events(gc.MAC), started))
	}
	return d, err
}

// phases tells, from the server's events, when each PXE milestone came, in seconds since the
// guest was started: where the time between firmware and kernel goes.
func phases(events []pxe.Event, started time.Time) string {
	var out []string
	seen := map[string]bool{}
	mark := func(name string, t time.Time) {
		if !seen[name] {
			seen[name] = true
			out = append(out, fmt.Sprintf("%s=%.2fs", name, t.Sub(started).Seconds()))
		}
	}
	for _, e := range events {
		switch {
		case e.Kind == pxe.KindDHCPDiscover:
			mark("discover", e.Time)
		case e.Kind == pxe.KindDHCPAck:
			mark("ack", e.Time)
		case e.Kind == pxe.KindScript && e.Status == 200:
			mark("script", e.Time)
		case e.Kind == pxe.KindHTTP && e.Status == 200 && e.Path == "/"+bootimage.KernelFile:
			mark("kernel-served", e.Time)
		case e.Kind == pxe.KindHTTP && e.Status == 200 && e.Path == "/"+bootimage.InitrdFile:
			mark("initrd-served", e.Time)
		}
	}
	return strings.Join(out, " ")
}

func bootDnsmasq(ctx context.Context, l *lab.Lab, gc lab.GuestConfig) (time.Duration, error) {
	nonce := fmt.Sprintf("%x", time.Now().UnixNano())
	d, err := lab.StartDnsmasq(ctx, l.Segment, lab.DnsmasqConfig{
		MAC:     gc.MAC,
		IP:      lab.FirstGuestIP(),
		Kernel:  l.Payload.Kernel,
		Initrd:  l.Payload.Initrd,
		Cmdline: fmt.Sprintf("%s pxec.mac=%s pxec.nonce=%s", l.Cmdline(), gc.MAC, nonce),
	})
	if err != nil {
		return 0, err
	}
	defer d.Stop(context.Background())
	t, err := sshVerified(ctx, l, gc, func(*lab.Guest) string { return nonce })
	if err != nil {
		return 0, fmt.Errorf("%w\ndnsmasq log:\n%s", err, d.Log())
	}
	return t, nil
}

// sshVerified boots the guest and returns the time from QEMU's start to the first command run
// over SSH with the host key pinned from the ready line. The ready line must carry the guest's
// MAC and the expected nonce (from wantNonce, or the PXE server's last script when nil).
func sshVerified(ctx context.Context, l *lab.Lab, gc lab.GuestConfig, wantNonce func(*lab.Guest) string) (time.Duration, error) {
	g, err := l.StartGuest(ctx, gc)
	if g != nil {
		defer g.Stop(context.Background())
	}
	if err != nil {
		return 0, err
	}
	b := l.Procedure(g, lab.TimeoutsFor(gc.Accel))
	r, err := b.WaitReady(ctx)
	if err != nil {
		return 0, err
	}
	want := ""
	if wantNonce != nil {
		want = wantNonce(g)
	} else if want = pxe.LastScriptNonce(l.PXE.Events(nil)); want == "" {
		return 0, errors.New("the PXE server served no script")
	}
	if err := b.CheckReady(r, want); err != nil {
		return 0, err
	}
	client, err := b.SSH(ctx, l.Keys, r.HostKeyFingerprint, gc.Name)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	return time.Since(g.Machine.Started), nil
}

func fail(code int, format string, args ...any) {
	fmt.Fprintln(os.Stderr, "bench:", fmt.Sprintf(format, args...))
	os.Exit(code)
}
