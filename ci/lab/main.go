// Command lab runs the documented PXE procedure end to end in a local QEMU lab and prints a
// step-by-step verdict: connect a Linux bridge, put our PXE server on it, attach a VM whose
// bridge NIC has the specified MAC and boot order 1, watch it PXE boot on its serial console,
// log in, and verify that eth1 carries the MAC and no IP while eth0 is addressed.
//
// It needs root (network namespaces, tap devices) and QEMU. Everything it creates lives in one
// network namespace that is deleted on exit, also on Ctrl-C; --sweep removes what a killed run
// left behind.
//
//	go run ./ci/lab [--firmware bios,efi] [--mac de:00:00:00:00:de] [--sweep]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/lab"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

func main() {
	firmwares := flag.String("firmware", "bios,efi", "comma-separated firmware to boot: bios, efi")
	macFlag := flag.String("mac", settings.DefaultMAC, "MAC of the VM's bridge interface")
	sweep := flag.Bool("sweep", false, "only delete lab namespaces left by runs that were killed")
	artifacts := flag.String("artifacts", envOr("ARTIFACTS", "_artifacts"), "directory for console transcripts")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *sweep {
		deleted, err := lab.Sweep(ctx)
		for _, d := range deleted {
			fmt.Println("deleted", d)
		}
		exitOn(err)
		return
	}
	mac, err := net.ParseMAC(*macFlag)
	if err != nil || len(mac) != 6 {
		fail(2, "--mac %q: not a 48-bit MAC address", *macFlag)
	}
	var fws []firmware.Firmware
	for _, f := range strings.Split(*firmwares, ",") {
		switch fw := firmware.Firmware(strings.TrimSpace(f)); fw {
		case firmware.BIOS, firmware.EFI:
			fws = append(fws, fw)
		default:
			fail(2, "--firmware %q: want bios, efi or both comma-separated", f)
		}
	}
	if os.Geteuid() != 0 {
		fail(2, "the lab needs root: it creates a network namespace, a bridge and tap devices")
	}
	if _, err := lab.Sweep(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "lab: sweeping namespaces of killed runs:", err)
	}
	if err := run(ctx, mac, fws, *artifacts); err != nil {
		if ctx.Err() != nil {
			fail(130, "interrupted; everything the lab created was removed")
		}
		fail(1, "%v", err)
	}
}

func run(ctx context.Context, mac net.HardwareAddr, fws []firmware.Firmware, artifacts string) error {
	start := time.Now()
	fmt.Println("lab: building the guest payload from Debian packages (cached after the first run)")
	payload, err := bootimage.Build(ctx, bootimage.Config{Logf: func(f string, a ...any) { fmt.Printf("lab: "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	fmt.Printf("lab: payload %s (kernel %s) ready in %.1fs\n", payload.Dir, payload.Manifest.KernelRelease, time.Since(start).Seconds())
	accel, why, err := qemu.DetectAccel(ctx, payload.Kernel)
	if err != nil {
		return err
	}
	fmt.Println("lab: accelerator:", why)

	var failed []string
	for _, fw := range fws {
		v, err := procedure(ctx, payload, mac, fw, accel, artifacts)
		v.PrintSummary(os.Stdout)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed = append(failed, string(fw))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("the procedure failed under %s firmware (console transcripts in %s)", strings.Join(failed, ", "), artifacts)
	}
	fmt.Printf("\nlab: every step passed under %s firmware\n", joinFirmware(fws))
	return nil
}

// procedure runs the documented steps for one firmware in a lab of its own.
func procedure(ctx context.Context, payload *bootimage.Payload, mac net.HardwareAddr, fw firmware.Firmware, accel qemu.Accel, artifacts string) (*lab.Verdict, error) {
	title := fmt.Sprintf("PXE boot, %s firmware, bridge NIC %s, %s", strings.ToUpper(string(fw)), mac, accel)
	fmt.Printf("\n== %s\n", title)
	v := lab.NewVerdict(title, os.Stdout)
	l, err := lab.New(lab.Config{Payload: payload, Allow: []net.HardwareAddr{mac}})
	if err != nil {
		return v, err
	}
	defer func() {
		// Clean up even after Ctrl-C: a fresh context, bounded.
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.Stop(c); err != nil {
			fmt.Fprintln(os.Stderr, "lab: cleanup:", err)
		}
	}()
	_ = v.Do("Connect a Linux bridge", func() (string, error) {
		if err := l.Connect(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %s in namespace %s", l.Segment.Bridge, l.Segment.ServerAddr, l.NS.Name), nil
	})
	_ = v.Do("Connect the PXE server to the same segment as the bridge", func() (string, error) {
		if err := l.StartPXE(ctx); err != nil {
			return "", err
		}
		return fmt.Sprintf("DHCP+TFTP+HTTP on %s, %s on its allow-list", l.PXE.BaseURL(), mac), nil
	})
	if !v.Passed() {
		return v, v.Err()
	}
	g, res, err := l.Boot(ctx, lab.GuestConfig{Name: "pxe-client-" + string(fw), MAC: mac, Firmware: fw, Accel: accel, VNC: true}, lab.TimeoutsFor(accel), v)
	if res != nil && res.Screenshot != nil {
		path := filepath.Join(artifacts, "lab", "pxe-client-"+string(fw)+"-boot-screen.png")
		if werr := writePNG(path, res); werr == nil {
			fmt.Println("lab: boot screen:", path)
		}
	}
	if g != nil {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = g.Stop(c)
		cancel()
		if err != nil {
			path := filepath.Join(artifacts, "lab", g.Config.Name+"-console.log")
			if werr := writeTranscript(g, path); werr == nil {
				fmt.Println("lab: console transcript:", path)
			}
		}
	}
	return v, err
}

func writePNG(path string, res *lab.Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return vnc.WritePNG(path, res.Screenshot)
}

func writeTranscript(g *lab.Guest, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return g.Console.WriteTranscript(path)
}

func joinFirmware(fws []firmware.Firmware) string {
	var s []string
	for _, f := range fws {
		s = append(s, strings.ToUpper(string(f)))
	}
	return strings.Join(s, " and ")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func exitOn(err error) {
	if err != nil {
		fail(1, "%v", err)
	}
}

func fail(code int, format string, args ...any) {
	fmt.Fprintln(os.Stderr, "lab:", fmt.Sprintf(format, args...))
	os.Exit(code)
}
