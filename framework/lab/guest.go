package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// GuestConfig describes one guest of the lab.
type GuestConfig struct {
	// Name identifies the guest in errors and artifacts.
	Name string
	// MAC is the bridge NIC's MAC (eth1).
	MAC net.HardwareAddr
	// Firmware is firmware.BIOS or firmware.EFI.
	Firmware firmware.Firmware
	// Accel is how QEMU runs the guest (see qemu.DetectAccel).
	Accel qemu.Accel
	// NoBootOrder leaves the bridge NIC out of the boot order (and without a boot ROM), as a
	// KubeVirt interface without bootOrder.
	NoBootOrder bool
	// Direct boots the payload's kernel directly instead of from the network: the floor the
	// benchmark measures PXE against. The kernel gets the same command line the PXE server's
	// script would give it, with a nonce of its own.
	Direct bool
	// Tee receives the raw serial console as it arrives (for a live view or an artifact).
	Tee io.Writer
	// Tap is a tap device on the lab bridge made with AttachTap; StartGuest makes one when empty.
	Tap string
	// VNC gives the guest a VGA display on a VNC socket, for Screenshot.
	VNC bool
}

// Guest is a running QEMU guest of the lab.
type Guest struct {
	// Config is what the guest was started with.
	Config GuestConfig
	// Machine is the QEMU process.
	Machine *qemu.Machine
	// Console is the guest's serial console.
	Console *console.Console
	// Tap is the guest's tap device on the lab bridge.
	Tap string
	// DirectNonce is the nonce given on a direct boot's command line.
	DirectNonce string

	lab     *Lab
	sshPort int
	dir     string // per-guest files (the VNC socket)
}

// iPXE's own words when it gives up on every network device.
var ipxeGaveUp = console.Phrase("No configuration methods succeeded")

// StartGuest attaches a tap device for the guest to the bridge and starts QEMU. The returned
// Guest (non-nil also on error once anything was created) must be stopped with Stop.
func (l *Lab) StartGuest(ctx context.Context, gc GuestConfig) (*Guest, error) {
	if len(gc.MAC) != 6 {
		return nil, fmt.Errorf("start guest %s: MAC %q is not a 48-bit MAC", gc.Name, gc.MAC)
	}
	tap := gc.Tap
	if tap == "" {
		var err error
		if tap, err = l.AttachTap(ctx); err != nil {
			return nil, fmt.Errorf("start guest %s: %w", gc.Name, err)
		}
	}
	l.guests++
	g := &Guest{Config: gc, Tap: tap, lab: l, sshPort: 2200 + l.guests}
	var err error
	bootIndex := 1
	if gc.NoBootOrder {
		bootIndex = 0
	}
	qc := qemu.Config{
		Name:     gc.Name,
		Firmware: gc.Firmware,
		Accel:    gc.Accel,
		Pod:      qemu.PodNIC{SSHPort: g.sshPort},
		Bridge:   []qemu.BridgeNIC{{Tap: tap, MAC: gc.MAC, BootIndex: bootIndex}},
		Wrap:     l.NS.Wrap(),
	}
	if gc.VNC {
		if g.dir, err = os.MkdirTemp("", "pxec-guest-"); err != nil {
			return g, fmt.Errorf("start guest %s: %w", gc.Name, err)
		}
		qc.VNCSocket = filepath.Join(g.dir, "vnc.sock")
	}
	if gc.Direct {
		g.DirectNonce = newNonce()
		qc.Direct = &qemu.DirectBoot{
			Kernel:  l.Payload.Kernel,
			Initrd:  l.Payload.Initrd,
			Cmdline: fmt.Sprintf("%s pxec.mac=%s pxec.nonce=%s", l.Cmdline(), gc.MAC, g.DirectNonce),
		}
	}
	if g.Machine, err = qemu.Start(ctx, qc); err != nil {
		return g, fmt.Errorf("start guest %s: %w", gc.Name, err)
	}
	var opts []console.Option
	if gc.Tee != nil {
		opts = append(opts, console.WithTee(gc.Tee))
	}
	if g.Console, err = console.New(g.Machine.Console, opts...); err != nil {
		return g, fmt.Errorf("start guest %s: %w", gc.Name, err)
	}
	return g, nil
}

// Stop ends QEMU and the console. The tap goes with the lab's namespace.
func (g *Guest) Stop(ctx context.Context) error {
	var errs []error
	if g.Machine != nil {
		errs = append(errs, g.Machine.Stop(ctx))
	}
	if g.Console != nil {
		if err := g.Console.Close(); err != nil && !errors.Is(err, console.ErrStreamEnded) {
			errs = append(errs, err)
		}
	}
	if g.dir != "" {
		errs = append(errs, os.RemoveAll(g.dir))
	}
	return errors.Join(errs...)
}

// Screenshot captures the guest's display over VNC once the firmware has drawn on it (QEMU's
// own 640x480 "display not initialized" notice does not count), as the documentation views
// the VMI's boot screen with VNC.
func (g *Guest) Screenshot(ctx context.Context) (*image.RGBA, error) {
	if g.dir == "" {
		return nil, fmt.Errorf("screenshot %s: the guest has no VNC display (GuestConfig.VNC)", g.Config.Name)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(g.dir, "vnc.sock"))
	if err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", g.Config.Name, err)
	}
	c, err := vnc.Connect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", g.Config.Name, err)
	}
	defer c.Close()
	for {
		img, err := c.Capture(ctx)
		if err != nil {
			return nil, fmt.Errorf("screenshot %s: %w", g.Config.Name, err)
		}
		if b := img.Bounds(); !vnc.IsBlank(img) && !(b.Dx() == 640 && b.Dy() == 480 && g.Config.Firmware == firmware.BIOS) {
			return img, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("screenshot %s: the firmware never drew on the display: %w", g.Config.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Expect waits for re on the console and, when the wait fails, says why in the lab's terms:
// QEMU's own exit message, or what the PXE server saw from this guest's MAC when iPXE gave up.
func (g *Guest) Expect(ctx context.Context, name string, re *regexp.Regexp) ([]string, error) {
	m, err := g.Console.Expect(ctx, re, console.Named(name), console.FailOn(ipxeGaveUp))
	if err == nil {
		return m, nil
	}
	if exit := g.Machine.ExitError(); exit != nil {
		return nil, fmt.Errorf("%s: %w", exit, err)
	}
	// The PXE server's view only explains a wait that iPXE was part of.
	ipxeRan := strings.Contains(g.Console.Text(), "iPXE")
	if errors.Is(err, console.ErrFailPattern) || (ctx.Err() != nil && ipxeRan) {
		if why := g.DHCPDiagnosis(); why != "" {
			return nil, fmt.Errorf("%s; %w", why, err)
		}
	}
	return nil, err
}

// DHCPDiagnosis explains, from the PXE server's event log, why this guest got no DHCP answer;
// it is empty when the server did answer.
func (g *Guest) DHCPDiagnosis() string {
	why, _ := pxe.DHCPDiagnosis(g.Config.MAC.String(), g.lab.PXE.Events(g.Config.MAC))
	return why
}

// WaitReady waits for the guest's ready line and parses it.
func (g *Guest) WaitReady(ctx context.Context) (bootimage.Ready, error) {
	m, err := g.Expect(ctx, "guest ready line", regexp.MustCompile(bootimage.ReadyPattern))
	if err != nil {
		return bootimage.Ready{}, err
	}
	return bootimage.ParseReady(m[0])
}

// SSH connects to the guest's sshd over its pod NIC (QEMU's port forward, inside the lab's
// namespace), pinning the host key to the fingerprint the guest printed on its console.
func (g *Guest) SSH(ctx context.Context, hostKeyFingerprint string) (*guestssh.Client, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", g.sshPort)
	dial := func(ctx context.Context) (net.Conn, error) { return g.lab.NS.DialContext(ctx, "tcp", addr) }
	return guestssh.Dial(ctx, dial, guestssh.Config{
		User:               "root",
		Signer:             g.lab.Keys.Signer(),
		HostKeyFingerprint: hostKeyFingerprint,
		HostKeyAlgorithms:  []string{bootimage.HostKeyAlgorithm},
		Name:               g.Config.Name,
		RetryInterval:      100 * time.Millisecond,
	})
}

// Login logs in as root on the serial console with the run's password.
func (g *Guest) Login(ctx context.Context) error {
	return g.Console.Login(ctx, "root", g.lab.Password)
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// macLine matches iPXE naming the NIC it opens, with the MAC it found.
func macLine(mac net.HardwareAddr) *regexp.Regexp {
	return regexp.MustCompile(`net\d+: ` + regexp.QuoteMeta(strings.ToLower(mac.String())))
}
