package lab

import (
	"context"
	"errors"
	"fmt"
	"image"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// TimeoutsFor returns the procedure's bounds for guests run with accel: the suite's defaults
// (settings.Default), scaled by its emulation factor under TCG, as on an emulating cluster.
func TimeoutsFor(accel qemu.Accel) settings.Timeouts {
	c := settings.Default()
	if accel == qemu.TCG {
		c = c.ForEmulation()
	}
	return c.Timeouts
}

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

// Boot runs the documented procedure for one guest on a started lab, one verdict step per
// step of the documentation, and returns what it observed. The guest is returned for the
// caller to stop (and to collect its transcript), also on error.
func (l *Lab) Boot(ctx context.Context, gc GuestConfig, to settings.Timeouts, v *Verdict) (*Guest, *Result, error) {
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

	b := l.Procedure(g, to)
	_ = v.Do("Wait for the VM to run: firmware on the serial console", func() (string, error) {
		banner, err := b.WaitFirmware(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%q after %.2fs", banner, time.Since(g.Machine.Started).Seconds()), nil
	})
	_ = v.Do("Watch the boot screen: iPXE starts on the bridge NIC", func() (string, error) {
		return b.WaitIPXE(ctx)
	})
	const vncStep = "View the VM using VNC: capture the boot screen"
	if !gc.VNC {
		v.Skip(vncStep, "the guest has no VNC display")
	} else {
		_ = v.Do(vncStep, func() (string, error) {
			img, err := b.CaptureScreen(ctx)
			if err != nil {
				return "", err
			}
			res.Screenshot = img
			r := img.Bounds()
			return fmt.Sprintf("%dx%d boot screen", r.Dx(), r.Dy()), nil
		})
	}
	_ = v.Do("PXE server answers the VM's DHCP with its reserved address", func() (string, error) {
		ack, err := b.WaitDHCP(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, boot file %s", ack.IP, ack.Path), nil
	})
	_ = v.Do("PXE server serves the iPXE script, kernel and initramfs over HTTP", func() (string, error) {
		p, err := b.WaitPayload(ctx)
		if err != nil {
			return "", err
		}
		res.Nonce = p.Nonce
		k, i := p.Kernel, p.Initrd
		return fmt.Sprintf("kernel %d B in %s, initramfs %d B in %s", k.Bytes, k.Duration.Round(time.Millisecond), i.Bytes, i.Duration.Round(time.Millisecond)), nil
	})
	_ = v.Do("Guest is ready: ready line with the VM's MAC and the script's nonce", func() (string, error) {
		r, err := b.WaitReady(ctx)
		if err != nil {
			return "", err
		}
		res.Ready = r
		if err := b.CheckReady(r, res.Nonce); err != nil {
			return "", err
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
		var err error
		if client, err = b.SSH(ctx, l.Keys, res.Ready.HostKeyFingerprint, gc.Name); err != nil {
			return "", err
		}
		res.SSHVerified = time.Since(g.Machine.Started)
		return fmt.Sprintf("%s after %.2fs", res.Ready.HostKeyFingerprint, res.SSHVerified.Seconds()), nil
	})
	_ = v.Do("Log in on the serial console", func() (string, error) {
		host, err := b.Login(ctx, l.Password)
		if err != nil {
			return "", err
		}
		return "root on ttyS0, hostname " + host, nil
	})
	_ = v.Do("Verify eth1 carries the specified MAC and has no IP address", func() (string, error) {
		if client == nil {
			return "", errors.New("no SSH session")
		}
		ifs, err := b.Interfaces(ctx, client)
		if err != nil {
			return "", err
		}
		res.Interfaces = ifs
		return procedure.CheckBridgeNIC(ifs, "eth1", mac)
	})
	_ = v.Do("Verify eth0 (pod network) has an IPv4 address", func() (string, error) {
		return procedure.CheckPodNIC(res.Interfaces, "eth0")
	})
	res.Events = l.PXE.Events(mac)
	return g, res, v.Err()
}
