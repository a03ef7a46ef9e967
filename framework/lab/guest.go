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

	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
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

// Procedure is the documented procedure for g on this lab: its console, its screen over VNC,
// its SSH port through QEMU's port forward in the lab's namespace, and the lab's PXE server.
func (l *Lab) Procedure(g *Guest, to settings.Timeouts) *procedure.Boot {
	return &procedure.Boot{Target: target{g}, MAC: g.Config.MAC, Firmware: g.Config.Firmware, Timeouts: to}
}

// target is a lab guest as the procedure sees it.
type target struct{ g *Guest }

func (t target) Console() *console.Console { return t.g.Console }

func (t target) Events(_ context.Context, mac net.HardwareAddr) ([]pxe.Event, error) {
	return t.g.lab.PXE.Events(mac), nil
}

// Screen captures the guest's display once over its VNC socket.
func (t target) Screen(ctx context.Context) (*image.RGBA, error) {
	g := t.g
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
	img, err := c.Capture(ctx)
	if err != nil {
		return nil, fmt.Errorf("screenshot %s: %w", g.Config.Name, err)
	}
	return img, nil
}

// DialSSH reaches the guest's sshd over its pod NIC (QEMU's port forward, inside the lab's
// namespace).
func (t target) DialSSH(ctx context.Context) (net.Conn, error) {
	return t.g.lab.NS.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", t.g.sshPort))
}

// Explain puts QEMU's own exit message, when it has exited, before a failed wait.
func (t target) Explain(err error) error {
	if exit := t.g.Machine.ExitError(); exit != nil {
		return fmt.Errorf("%s: %w", exit, err)
	}
	return err
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
