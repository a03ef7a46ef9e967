package procedure

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// Target is where the procedure runs: one guest and the PXE server it boots from.
type Target interface {
	// Console is the guest's serial console, attached before the firmware's first word.
	Console() *console.Console
	// Events returns the PXE server's events for mac, oldest first. Once the server is gone
	// for good it returns what is still known of them with an error wrapping
	// pxe.ErrServerGone, on which the waits end at once.
	Events(ctx context.Context, mac net.HardwareAddr) ([]pxe.Event, error)
	// Screen captures the guest's display once.
	Screen(ctx context.Context) (*image.RGBA, error)
	// DialSSH connects to the guest's SSH port.
	DialSSH(ctx context.Context) (net.Conn, error)
	// Explain adds to a failed wait what the target knows of the guest's fate (QEMU's exit,
	// say); it returns err as it is when it knows nothing more.
	Explain(err error) error
}

// Path is the network between the guest's bridge interface and its PXE server, as far as a
// failed boot can question it.
type Path interface {
	// Drops says what on the path drops the guest's DHCP (a node's firewall rule, with the
	// setting that hands bridged frames to it), or "" when it finds nothing that does.
	Drops(ctx context.Context) (string, error)
}

// How often a step looks again while it waits. These pace the waits; the bounds are
// settings.Timeouts'.
const (
	eventPoll      = 250 * time.Millisecond // re-reading the PXE server's event log
	screenPoll     = 200 * time.Millisecond // capturing the screen again while it is blank
	sshRetry       = 250 * time.Millisecond // dialling again while the guest's sshd is not up
	efiKeyInterval = time.Second            // pressing OVMF's continue key
)

// Boot is one guest's run of the documented procedure on a target. Its steps are called in the
// documented order; each starts its own bound when called.
type Boot struct {
	// Target is the guest and its PXE server.
	Target Target
	// MAC is the guest's bridge interface (eth1).
	MAC net.HardwareAddr
	// Firmware is the guest's firmware.
	Firmware firmware.Firmware
	// Timeouts bound the steps (already scaled for emulation where that applies).
	Timeouts settings.Timeouts
	// Timings records the milestones reached; nil records nothing.
	Timings *Timings
	// Path, when set, is asked what drops the guest's DHCP when the PXE server heard none of
	// it; nil asks nothing.
	Path Path

	// since hides from the steps the events of the guest's earlier boots (NextBoot): only
	// events recorded after it, by the server's clock, are this boot's.
	since time.Time
}

func (b *Boot) mark(s Step) {
	if b.Timings != nil {
		b.Timings.Mark(s)
	}
}

// IPXEGaveUp matches iPXE's own words when it gives up, and SeaBIOS's after it: every console
// wait fails on them at once instead of running out its bound. iPXE gives up on DHCP with "No configuration methods
// succeeded" unless IPv6 configured the interface (a router advertisement reached it): it then
// prints "Nothing to boot" for the interface and, for each interface it tried, its last words
// "No more network devices"; SeaBIOS follows with "No bootable device".
var IPXEGaveUp = console.AnyPhrase("No configuration methods succeeded", "No more network devices", "No bootable device")

// IPXELine matches iPXE naming the NIC it opens, with mac.
func IPXELine(mac net.HardwareAddr) *regexp.Regexp {
	return regexp.MustCompile(`net\d+: ` + regexp.QuoteMeta(strings.ToLower(mac.String())))
}

// expect waits for re on the console, failing at once on iPXE giving up or on failOn, and says
// why a wait failed: the target's view, then what the PXE server saw of the MAC when iPXE was
// part of the wait.
func (b *Boot) expect(ctx context.Context, name string, re *regexp.Regexp, failOn ...*regexp.Regexp) ([]string, error) {
	con := b.Target.Console()
	m, err := con.Expect(ctx, re, console.Named(name), console.FailOn(append([]*regexp.Regexp{IPXEGaveUp}, failOn...)...))
	if err == nil {
		return m, nil
	}
	err = b.Target.Explain(err)
	ipxeRan := strings.Contains(con.Text(), "iPXE")
	if errors.Is(err, console.ErrFailPattern) || (ctx.Err() != nil && ipxeRan) {
		if why, _ := b.dhcpDiagnosis(context.WithoutCancel(ctx)); why != "" {
			return nil, fmt.Errorf("%s; %w", why, err)
		}
	}
	return nil, err
}

// events reads the MAC's events of this boot (see NextBoot), oldest first; a server that is
// gone (pxe.ErrServerGone) still yields what is known of them, with the error.
func (b *Boot) events(ctx context.Context) ([]pxe.Event, error) {
	events, err := b.Target.Events(ctx, b.MAC)
	if !b.since.IsZero() {
		events = slices.DeleteFunc(events, func(e pxe.Event) bool { return !e.Time.After(b.since) })
	}
	return events, err
}

// dhcpDiagnosis says what the PXE server saw of the MAC's DHCP ("" when it answered), with the
// number of messages it ignored; when it heard none at all, it adds what the Path says drops
// them. Reading the log is bounded like a DHCP wait, asking the Path like a node probe.
func (b *Boot) dhcpDiagnosis(ctx context.Context) (string, int) {
	readCtx, cancel := context.WithTimeout(ctx, b.Timeouts.DHCP)
	defer cancel()
	events, err := b.events(readCtx)
	if err != nil && !errors.Is(err, pxe.ErrServerGone) {
		return "", 0
	}
	why, ignored := pxe.DHCPDiagnosis(b.MAC.String(), events)
	if why == "" || b.Path == nil || slices.ContainsFunc(events, func(e pxe.Event) bool { return e.Protocol == pxe.ProtoDHCP }) {
		return why, ignored
	}
	pathCtx, cancel := context.WithTimeout(ctx, b.Timeouts.NodeProbe)
	defer cancel()
	switch drops, err := b.Path.Drops(pathCtx); {
	case err != nil:
		why += fmt.Sprintf("; what on the way drops it could not be read: %v", err)
	case drops != "":
		why += "; " + drops
	}
	return why, ignored
}

// waitEvent polls the MAC's events of this boot until match accepts one, and returns it with
// the events last read. It fails at once when the server is gone (pxe.ErrServerGone) and
// what is known of its events holds no match.
func (b *Boot) waitEvent(ctx context.Context, match func(pxe.Event) bool) (pxe.Event, []pxe.Event, error) {
	var lastErr error
	var last []pxe.Event
	for {
		events, err := b.events(ctx)
		if err == nil || errors.Is(err, pxe.ErrServerGone) {
			last = events
			for _, e := range events {
				if match(e) {
					return e, last, nil
				}
			}
		}
		if errors.Is(err, pxe.ErrServerGone) {
			return pxe.Event{}, last, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return pxe.Event{}, last, fmt.Errorf("%w (last read: %v)", context.Cause(ctx), lastErr)
			}
			return pxe.Event{}, last, context.Cause(ctx)
		case <-time.After(eventPoll):
		}
	}
}

// WaitFirmware waits for the firmware's (or iPXE's) first words on the console.
func (b *Boot) WaitFirmware(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.VMIRunning)
	defer cancel()
	m, err := b.expect(ctx, "firmware banner", regexp.MustCompile(`SeaBIOS|BdsDxe|UEFI|iPXE`))
	if err != nil {
		return "", err
	}
	return m[0], nil
}

// SkipBootMenu answers the firmware's boot menu, which KubeVirt shows for Timeouts.BootMenu
// on a VMI started paused, so that the guest boots at once: Enter at SeaBIOS's prompt; for
// OVMF, which prints no prompt on the serial console, its continue key (Enter) once a second in
// the background until its boot manager starts loading ("BdsDxe: loading"). It only saves time:
// a prompt that never shows, or a key that is ignored, leaves the boot as it was.
func (b *Boot) SkipBootMenu(ctx context.Context) {
	con := b.Target.Console()
	if b.Firmware == firmware.EFI {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.Timeouts.BootMenu)
		go func() {
			defer cancel()
			for !strings.Contains(con.Text(), "BdsDxe: loading") {
				if err := con.Send(ctx, "\r"); err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(efiKeyInterval):
				}
			}
		}()
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.BootMenu)
	defer cancel()
	if _, err := con.Expect(ctx, console.Phrase("Press ESC for boot menu"), console.Named("SeaBIOS's boot menu prompt")); err != nil {
		return
	}
	_ = con.Send(ctx, "\r")
}

// WaitIPXE waits for iPXE to open the bridge interface on the console, and returns its line.
func (b *Boot) WaitIPXE(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.IPXE)
	defer cancel()
	m, err := b.expect(ctx, "iPXE opening the bridge interface "+b.MAC.String(), IPXELine(b.MAC))
	if err != nil {
		return "", err
	}
	b.mark(StepIPXE)
	return m[0], nil
}

// CaptureScreen captures the boot screen once the firmware has drawn on it: not blank, and not
// QEMU's own 640x480 "display not initialized" notice that a BIOS guest shows first.
func (b *Boot) CaptureScreen(ctx context.Context) (*image.RGBA, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.Screenshot)
	defer cancel()
	for {
		img, err := b.Target.Screen(ctx)
		if err != nil {
			return nil, err
		}
		if r := img.Bounds(); !vnc.IsBlank(img) && !(r.Dx() == 640 && r.Dy() == 480 && b.Firmware == firmware.BIOS) {
			return img, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("boot screen of %s: the firmware never drew on the display: %w", b.MAC, ctx.Err())
		case <-time.After(screenPoll):
		}
	}
}

// ErrNoDHCPAnswer marks a boot that failed because the PXE server ignored the MAC.
var ErrNoDHCPAnswer = errors.New("no DHCP answer")

// noDHCPAnswer is ErrNoDHCPAnswer with the server's own explanation as its text.
type noDHCPAnswer string

func (e noDHCPAnswer) Error() string        { return string(e) }
func (e noDHCPAnswer) Is(target error) bool { return target == ErrNoDHCPAnswer }

// WaitDHCP waits for iPXE's DHCP result on the console and the PXE server's matching ACK to
// iPXE. It fails fast, with ErrNoDHCPAnswer and the server's reason, once the server has
// ignored pxe.IgnoredBeforeGivingUp of the MAC's DHCP messages.
func (b *Boot) WaitDHCP(ctx context.Context) (pxe.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.DHCP)
	defer cancel()
	waitc, stopWaiting := context.WithCancelCause(ctx)
	defer stopWaiting(nil)
	go func() {
		for {
			if events, err := b.events(waitc); err == nil {
				if why, ignored := pxe.DHCPDiagnosis(b.MAC.String(), events); why != "" && ignored >= pxe.IgnoredBeforeGivingUp {
					stopWaiting(noDHCPAnswer(why))
					return
				}
			}
			select {
			case <-waitc.Done():
				return
			case <-time.After(eventPoll):
			}
		}
	}()
	m, err := b.Target.Console().Expect(waitc, regexp.MustCompile(`net\d+: (\d+\.\d+\.\d+\.\d+)/`), console.Named("iPXE's DHCP result"),
		console.FailOn(IPXEGaveUp))
	if err != nil {
		if cause := context.Cause(waitc); errors.Is(cause, ErrNoDHCPAnswer) {
			return pxe.Event{}, cause
		}
		why, ignored := b.dhcpDiagnosis(context.WithoutCancel(ctx))
		if why != "" && ignored >= pxe.IgnoredBeforeGivingUp {
			return pxe.Event{}, noDHCPAnswer(why)
		}
		if why == "" {
			why = fmt.Sprintf("the PXE server did answer %s's DHCP", b.MAC)
		}
		return pxe.Event{}, fmt.Errorf("%s; %w", why, b.Target.Explain(err))
	}
	// Firmware whose PXE stack is not iPXE (OVMF's) gets an ACK of its own first, naming the
	// iPXE loader to fetch over TFTP; the address iPXE printed comes from the ACK to iPXE.
	ack, _, err := b.waitEvent(ctx, func(e pxe.Event) bool { return e.Kind == pxe.KindDHCPAck && e.UserClass == "iPXE" })
	if err != nil {
		return pxe.Event{}, fmt.Errorf("iPXE configured %s but the PXE server logged no DHCP ACK to iPXE for %s: %w", m[1], b.MAC, err)
	}
	if ack.IP != m[1] {
		return ack, fmt.Errorf("iPXE configured %s but the PXE server acknowledged %s", m[1], ack.IP)
	}
	b.mark(StepDHCP)
	return ack, nil
}

// Payload is what the PXE server served for one boot.
type Payload struct {
	// Kernel and Initrd are the HTTP transfers of the kernel and the initramfs.
	Kernel, Initrd pxe.Event
	// Nonce is the nonce of the iPXE script served to the MAC.
	Nonce string
}

// WaitPayload waits for the server to have served the script, kernel and initramfs to the MAC.
// It fails at once, with "payload transfer stopped: the PXE server is gone" and what the server
// had served by then, when the server has stopped for good (pxe.ErrServerGone).
func (b *Boot) WaitPayload(ctx context.Context) (Payload, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.PXEBoot)
	defer cancel()
	var p Payload
	for _, f := range []struct {
		name string
		ev   *pxe.Event
	}{{bootimage.KernelFile, &p.Kernel}, {bootimage.InitrdFile, &p.Initrd}} {
		var err error
		var seen []pxe.Event
		*f.ev, seen, err = b.waitEvent(ctx, func(e pxe.Event) bool {
			return e.Kind == pxe.KindHTTP && e.Path == "/"+f.name && e.Status == 200 && e.Reason == ""
		})
		if errors.Is(err, pxe.ErrServerGone) {
			return p, fmt.Errorf("payload transfer stopped: %w; it had served %s %s", err, b.MAC, served(seen))
		}
		if err != nil {
			return p, fmt.Errorf("%s not served to %s over HTTP: %w", f.name, b.MAC, err)
		}
	}
	events, err := b.events(ctx)
	if err != nil {
		return p, err
	}
	if p.Nonce = pxe.LastScriptNonce(events); p.Nonce == "" {
		return p, fmt.Errorf("no iPXE script with a nonce was served to %s", b.MAC)
	}
	b.mark(StepPayload)
	return p, nil
}

// served says what a boot's events show the server handed out: its DHCP answers, scripts and
// files, in order.
func served(events []pxe.Event) string {
	var out []string
	for _, e := range events {
		switch {
		case e.Kind == pxe.KindDHCPAck:
			out = append(out, "a DHCP ACK ("+e.IP+")")
		case e.Kind == pxe.KindScript && e.Status == 200:
			out = append(out, "an iPXE script")
		case (e.Kind == pxe.KindHTTP || e.Kind == pxe.KindTFTP) && e.Reason == "":
			out = append(out, fmt.Sprintf("%s over %s (%d bytes)", e.Path, e.Protocol, e.Bytes))
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ") + " and nothing after"
}

// NextBoot starts the guest's next boot, for a guest that reboots: from now on the steps look
// only at what the PXE server records after the last event it holds for the MAC now. Call it
// before the guest reboots.
func (b *Boot) NextBoot(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.DHCP)
	defer cancel()
	events, err := b.events(ctx)
	if err != nil {
		return fmt.Errorf("next boot of %s: %w", b.MAC, err)
	}
	if len(events) > 0 {
		b.since = events[len(events)-1].Time
	}
	return nil
}

// WaitReady waits for the guest's ready line and parses it; a kernel panic or the guest's own
// failure line ends the wait at once.
func (b *Boot) WaitReady(ctx context.Context) (bootimage.Ready, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.GuestReady)
	defer cancel()
	m, err := b.expect(ctx, "the guest's ready line", regexp.MustCompile(bootimage.ReadyPattern),
		regexp.MustCompile(`Kernel panic|PXEC-FAIL`))
	if err != nil {
		return bootimage.Ready{}, err
	}
	r, err := bootimage.ParseReady(m[0])
	if err != nil {
		return r, err
	}
	b.mark(StepReady)
	return r, nil
}

// CheckReady asserts that the ready line names the MAC and carries the nonce of the script the
// PXE server served: proof that this boot came from this server.
func (b *Boot) CheckReady(r bootimage.Ready, nonce string) error {
	if r.MAC.String() != b.MAC.String() {
		return fmt.Errorf("ready line MAC %s, want %s", r.MAC, b.MAC)
	}
	if r.Nonce != nonce {
		return fmt.Errorf("ready line nonce %s, but the PXE server's script for %s carried %s", r.Nonce, b.MAC, nonce)
	}
	return nil
}

// SSH logs in as root with keys, pinning the host key to the fingerprint the guest printed on
// its console, and runs a first command.
func (b *Boot) SSH(ctx context.Context, keys *guestssh.KeyPair, hostKeyFingerprint, name string) (*guestssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.SSH)
	defer cancel()
	c, err := guestssh.Dial(ctx, b.Target.DialSSH, guestssh.Config{
		User: "root", Signer: keys.Signer(), HostKeyFingerprint: hostKeyFingerprint,
		HostKeyAlgorithms: []string{bootimage.HostKeyAlgorithm}, Name: name, RetryInterval: sshRetry,
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Output(ctx, "true"); err != nil {
		c.Close()
		return nil, err
	}
	b.mark(StepSSH)
	return c, nil
}

// Login logs in as root on the serial console and returns the guest's hostname.
func (b *Boot) Login(ctx context.Context, password string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.ConsoleLogin)
	defer cancel()
	con := b.Target.Console()
	if err := con.Login(ctx, "root", password); err != nil {
		return "", err
	}
	out, status, err := con.Run(ctx, "hostname")
	if err != nil {
		return "", err
	}
	if status != 0 {
		return "", fmt.Errorf("hostname on the console exited %d: %s", status, out)
	}
	return strings.TrimSpace(out), nil
}

// Interfaces reads the guest's interfaces over SSH.
func (b *Boot) Interfaces(ctx context.Context, c *guestssh.Client) ([]guestssh.Interface, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.SSH)
	defer cancel()
	return c.Interfaces(ctx)
}

// Events returns the PXE server's events for the MAC, bounded like a DHCP wait.
func (b *Boot) Events(ctx context.Context) ([]pxe.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Timeouts.DHCP)
	defer cancel()
	return b.Target.Events(ctx, b.MAC)
}
