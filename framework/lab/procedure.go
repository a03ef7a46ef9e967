package lab

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"regexp"
	"slices"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
)

// Timeouts bound each wait of the procedure. Emulated guests are several times slower than
// KVM ones, so the defaults scale with the accelerator.
type Timeouts struct {
	// Firmware is from QEMU's start to the firmware's first words on the console.
	Firmware time.Duration
	// DHCP is from the firmware's first words to iPXE's DHCP answer.
	DHCP time.Duration
	// Payload is from the DHCP answer to the kernel and initramfs served.
	Payload time.Duration
	// Ready is from the payload served to the guest's ready line.
	Ready time.Duration
	// Login bounds the console login, and SSH the SSH connection and each command.
	Login, SSH time.Duration
}

// DefaultTimeouts returns generous bounds for the accelerator: they catch a hung boot without
// failing a slow machine (under TCG here a whole boot takes about 10 s).
func DefaultTimeouts(a qemu.Accel) Timeouts {
	t := Timeouts{Firmware: 20 * time.Second, DHCP: 45 * time.Second, Payload: 30 * time.Second,
		Ready: 60 * time.Second, Login: 30 * time.Second, SSH: 30 * time.Second}
	if a == qemu.TCG {
		// OVMF under emulation on a busy 2-core machine has taken 15 s to print its first line.
		t.Firmware *= 4
		t.Payload *= 2
		t.Ready *= 3
		t.Login *= 2
		t.SSH *= 2
	}
	return t
}

var errNoDHCPAnswer = errors.New("the PXE server ignored the MAC's DHCP messages")

// Result is what a run of the procedure observed, for callers to assert on or report.
type Result struct {
	// Ready is the guest's parsed ready line.
	Ready bootimage.Ready
	// Interfaces are the guest's interfaces as SSH read them.
	Interfaces []guestssh.Interface
	// Events are the PXE server's events for the guest's MAC.
	Events []pxe.Event
	// Nonce is the nonce of the last iPXE script the server served to the MAC.
	Nonce string
	// Screenshot is the boot screen captured over VNC (nil without GuestConfig.VNC).
	Screenshot *image.RGBA
	// SSHVerified is when SSH with the pinned host key first ran a command, since QEMU started.
	SSHVerified time.Duration
}

// fileServed finds the successful HTTP transfer of name in events.
func fileServed(events []pxe.Event, name string) (pxe.Event, bool) {
	for _, e := range slices.Backward(events) {
		if e.Kind == pxe.KindHTTP && e.Status == 200 && e.Path == "/"+name && e.Reason == "" {
			return e, true
		}
	}
	return pxe.Event{}, false
}

func step(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// Boot runs the documented procedure for one guest on a started lab, one verdict step per
// step of the documentation, and returns what it observed. The guest is returned for the
// caller to stop (and to collect its transcript), also on error.
func (l *Lab) Boot(ctx context.Context, gc GuestConfig, to Timeouts, v *Verdict) (*Guest, *Result, error) {
	res := &Result{}
	var g *Guest
	mac := gc.MAC

	if err := v.Do("Create the network attachment: a tap on the bridge", func() (string, error) {
		tap, err := l.AttachTap(ctx)
		if err != nil {
			return "", err
		}
		gc.Tap = tap
		return fmt.Sprintf("%s on %s", tap, l.Segment.Bridge), nil
	}); err != nil {
		return nil, res, v.Err()
	}
	if err := v.Do(fmt.Sprintf("Create the VM: bridge NIC %s, boot order 1, %s firmware", mac, gc.Firmware), func() (string, error) {
		var err error
		g, err = l.StartGuest(ctx, gc)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("tap %s, accel %s", g.Tap, gc.Accel), nil
	}); err != nil {
		return g, res, v.Err()
	}

	_ = v.Do("Wait for the VM to run: firmware on the serial console", func() (string, error) {
		c, cancel := step(ctx, to.Firmware)
		defer cancel()
		m, err := g.Expect(c, "firmware banner", regexp.MustCompile(`SeaBIOS|BdsDxe|UEFI|iPXE`))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%q after %.2fs", m[0], time.Since(g.Machine.Started).Seconds()), nil
	})
	_ = v.Do("Watch the boot screen: iPXE starts on the bridge NIC", func() (string, error) {
		c, cancel := step(ctx, to.DHCP)
		defer cancel()
		m, err := g.Expect(c, "iPXE opening the bridge NIC", macLine(mac))
		if err != nil {
			return "", err
		}
		return m[0], nil
	})
	const vncStep = "View the VM using VNC: capture the boot screen"
	if !gc.VNC {
		v.Skip(vncStep, "the guest has no VNC display")
	} else {
		_ = v.Do(vncStep, func() (string, error) {
			c, cancel := step(ctx, to.Firmware)
			defer cancel()
			img, err := g.Screenshot(c)
			if err != nil {
				return "", err
			}
			res.Screenshot = img
			b := img.Bounds()
			return fmt.Sprintf("%dx%d boot screen", b.Dx(), b.Dy()), nil
		})
	}
	_ = v.Do("PXE server answers the VM's DHCP with its reserved address", func() (string, error) {
		c, cancel := step(ctx, to.DHCP)
		defer cancel()
		// Fail fast: once the server has ignored a few DHCP messages from the MAC, no answer is
		// coming, so stop waiting for iPXE's own (much later) timeout.
		waitc, stopWaiting := context.WithCancelCause(c)
		defer stopWaiting(nil)
		go func() {
			ignored := 0
			_, err := l.PXE.WaitFor(waitc, mac, func(e pxe.Event) bool {
				if e.Kind == pxe.KindDHCPIgnored {
					ignored++
				}
				return ignored >= pxe.IgnoredBeforeGivingUp
			})
			if err == nil {
				stopWaiting(errNoDHCPAnswer)
			}
		}()
		// iPXE prints the address it configured; the server's log must show the ACK too.
		m, err := g.Expect(waitc, "iPXE's DHCP result", regexp.MustCompile(`net\d+: (\d+\.\d+\.\d+\.\d+)/`))
		if err != nil {
			if errors.Is(context.Cause(waitc), errNoDHCPAnswer) {
				return "", errors.New(g.DHCPDiagnosis())
			}
			return "", err
		}
		ack, err := l.PXE.WaitFor(c, mac, func(e pxe.Event) bool { return e.Kind == pxe.KindDHCPAck })
		if err != nil {
			return "", fmt.Errorf("iPXE configured %s but the PXE server logged no DHCP ACK for %s: %w", m[1], mac, err)
		}
		if ack.IP != m[1] {
			return "", fmt.Errorf("iPXE configured %s but the PXE server acknowledged %s", m[1], ack.IP)
		}
		return fmt.Sprintf("%s, boot file %s", ack.IP, ack.Path), nil
	})
	_ = v.Do("PXE server serves the iPXE script, kernel and initramfs over HTTP", func() (string, error) {
		c, cancel := step(ctx, to.Payload)
		defer cancel()
		for _, name := range []string{bootimage.KernelFile, bootimage.InitrdFile} {
			if _, err := l.PXE.WaitFor(c, mac, func(e pxe.Event) bool {
				return e.Kind == pxe.KindHTTP && e.Path == "/"+name && e.Status == 200 && e.Reason == ""
			}); err != nil {
				return "", fmt.Errorf("%s not served to %s over HTTP: %w", name, mac, err)
			}
		}
		events := l.PXE.Events(mac)
		k, _ := fileServed(events, bootimage.KernelFile)
		i, _ := fileServed(events, bootimage.InitrdFile)
		res.Nonce = pxe.LastScriptNonce(events)
		if res.Nonce == "" {
			return "", fmt.Errorf("no iPXE script with a nonce was served to %s", mac)
		}
		return fmt.Sprintf("kernel %d B in %s, initramfs %d B in %s", k.Bytes, k.Duration.Round(time.Millisecond), i.Bytes, i.Duration.Round(time.Millisecond)), nil
	})
	_ = v.Do("Guest is ready: ready line with the VM's MAC and the script's nonce", func() (string, error) {
		c, cancel := step(ctx, to.Ready)
		defer cancel()
		r, err := g.WaitReady(c)
		if err != nil {
			return "", err
		}
		res.Ready = r
		if r.MAC.String() != mac.String() {
			return "", fmt.Errorf("ready line MAC %s, want %s", r.MAC, mac)
		}
		if r.Nonce != res.Nonce {
			return "", fmt.Errorf("ready line nonce %s, but the PXE server's script for %s carried %s", r.Nonce, mac, res.Nonce)
		}
		return fmt.Sprintf("%s on %s after %.2fs", r.MAC, r.Iface, time.Since(g.Machine.Started).Seconds()), nil
	})
	var client *guestssh.Client
	defer func() {
		if client != nil {
			client.Close()
		}
	}()
	_ = v.Do("Log in over SSH with the host key pinned from the console", func() (string, error) {
		c, cancel := step(ctx, to.SSH)
		defer cancel()
		var err error
		client, err = g.SSH(c, res.Ready.HostKeyFingerprint)
		if err != nil {
			return "", err
		}
		if _, err := client.Output(c, "true"); err != nil {
			return "", err
		}
		res.SSHVerified = time.Since(g.Machine.Started)
		return fmt.Sprintf("%s after %.2fs", res.Ready.HostKeyFingerprint, res.SSHVerified.Seconds()), nil
	})
	_ = v.Do("Log in on the serial console", func() (string, error) {
		c, cancel := step(ctx, to.Login)
		defer cancel()
		if err := g.Login(c); err != nil {
			return "", err
		}
		out, status, err := g.Console.Run(c, "hostname")
		if err != nil {
			return "", err
		}
		if status != 0 {
			return "", fmt.Errorf("hostname exited %d: %s", status, out)
		}
		return "root on ttyS0, hostname " + firstLine(out), nil
	})
	_ = v.Do("Verify eth1 carries the specified MAC and has no IP address", func() (string, error) {
		c, cancel := step(ctx, to.SSH)
		defer cancel()
		ifs, err := client.Interfaces(c)
		if err != nil {
			return "", err
		}
		res.Interfaces = ifs
		return checkBridgeNIC(ifs, "eth1", mac)
	})
	_ = v.Do("Verify eth0 (pod network) has an IPv4 address", func() (string, error) {
		return checkPodNIC(res.Interfaces, "eth0")
	})
	res.Events = l.PXE.Events(mac)
	return g, res, v.Err()
}

// checkBridgeNIC asserts the documented state of the PXE interface.
func checkBridgeNIC(ifs []guestssh.Interface, name string, mac net.HardwareAddr) (string, error) {
	nic, ok := guestssh.InterfaceByName(ifs, name)
	if !ok {
		return "", fmt.Errorf("guest has no %s (interfaces: %s)", name, ifaceNames(ifs))
	}
	if nic.MAC.String() != mac.String() {
		return "", fmt.Errorf("%s has MAC %s, want %s", name, nic.MAC, mac)
	}
	if len(nic.IPv4) > 0 || len(nic.IPv6) > 0 {
		return "", fmt.Errorf("%s has addresses %v %v, want none", name, nic.IPv4, nic.IPv6)
	}
	return fmt.Sprintf("%s %s, up=%v, state %s, no address", name, nic.MAC, nic.Up, nic.OperState), nil
}

// checkPodNIC asserts the pod-network interface got an address.
func checkPodNIC(ifs []guestssh.Interface, name string) (string, error) {
	nic, ok := guestssh.InterfaceByName(ifs, name)
	if !ok {
		return "", fmt.Errorf("guest has no %s (interfaces: %s)", name, ifaceNames(ifs))
	}
	if len(nic.IPv4) == 0 {
		return "", fmt.Errorf("%s has no IPv4 address", name)
	}
	return fmt.Sprintf("%s %s", name, nic.IPv4[0]), nil
}

func ifaceNames(ifs []guestssh.Interface) string {
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return fmt.Sprint(names)
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' || r == '\r' {
			return s[:i]
		}
	}
	return s
}
