package procedure

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

var testMAC = net.HardwareAddr{0xde, 0, 0, 0, 0, 0xde}

// fakeTarget is a guest whose console the test writes, with a PXE event log the test fills and
// screens it hands out in turn.
type fakeTarget struct {
	t       *testing.T
	con     *console.Console
	guest   net.Conn // the guest's end of the console
	mu      sync.Mutex
	events  []pxe.Event
	screens []*image.RGBA
	sent    strings.Builder // what the console sent to the guest
	explain string
	gone    string // when set, the server is gone: Events says so, with what it knew
}

func newFakeTarget(t *testing.T) *fakeTarget {
	t.Helper()
	host, guest := net.Pipe()
	con, err := console.New(host)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTarget{t: t, con: con, guest: guest}
	go func() {
		b := make([]byte, 256)
		for {
			n, err := guest.Read(b)
			f.mu.Lock()
			f.sent.Write(b[:n])
			f.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { con.Close(); guest.Close() })
	return f
}

// print makes the guest print s on its console; a console closed by then (the test ended)
// reads no more.
func (f *fakeTarget) print(s string) {
	_, _ = io.WriteString(f.guest, s)
}

func (f *fakeTarget) log(e ...pxe.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e...)
}

func (f *fakeTarget) Console() *console.Console { return f.con }

func (f *fakeTarget) Events(_ context.Context, mac net.HardwareAddr) ([]pxe.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pxe.Event
	for _, e := range f.events {
		if e.MAC == mac.String() {
			out = append(out, e)
		}
	}
	if f.gone != "" {
		return out, fmt.Errorf("%w: %s", pxe.ErrServerGone, f.gone)
	}
	return out, nil
}

// fakePath is a network path whose drops the test decides, counting how often it was asked.
type fakePath struct {
	drops string
	asked atomic.Int32
}

func (p *fakePath) Drops(context.Context) (string, error) {
	p.asked.Add(1)
	return p.drops, nil
}

func (f *fakeTarget) Screen(context.Context) (*image.RGBA, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.screens) == 0 {
		return nil, errors.New("no screen")
	}
	s := f.screens[0]
	if len(f.screens) > 1 {
		f.screens = f.screens[1:]
	}
	return s, nil
}

func (f *fakeTarget) DialSSH(context.Context) (net.Conn, error) {
	return nil, errors.New("the fake guest has no SSH")
}

func (f *fakeTarget) Explain(err error) error {
	if f.explain == "" {
		return err
	}
	return fmt.Errorf("%s: %w", f.explain, err)
}

// testBoot is a Boot on f whose every bound is d.
func testBoot(f *fakeTarget, d time.Duration) *Boot {
	var tm settings.Timeouts
	for _, fld := range tm.Fields() {
		*fld.Value = d
	}
	b := &Boot{Target: f, MAC: testMAC, Firmware: firmware.BIOS, Timeouts: tm, Timings: &Timings{}}
	b.Timings.Start()
	return b
}

// callerCtx is the caller's context for a step that must end on its own: a step that ran out
// this instead (its own bound or fail-fast broken) is caught by endedOnItsOwn.
func callerCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// endedOnItsOwn fails the test when the step returned only because the caller's context ended.
func endedOnItsOwn(t *testing.T, ctx context.Context) {
	t.Helper()
	if ctx.Err() != nil {
		t.Error("the step ran until the caller's context ended instead of ending on its own")
	}
}

func ev(kind pxe.EventKind, mods ...func(*pxe.Event)) pxe.Event {
	e := pxe.Event{MAC: testMAC.String(), Kind: kind}
	for _, m := range mods {
		m(&e)
	}
	return e
}

func TestWaitIPXEFindsTheBridgeInterface(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	go f.print("iPXE 1.21.1+ -- Open Source Network Boot Firmware\r\nnet0: 52:54:00:00:00:01 using virtio-net\r\nnet1: de:00:00:00:00:de using virtio-net on 0000:00:03.0 (Ethernet) [open]\r\n")
	line, err := b.WaitIPXE(context.Background())
	if err != nil || !strings.HasPrefix(line, "net1: de:00:00:00:00:de") {
		t.Fatalf("WaitIPXE = %q, %v", line, err)
	}
	if m := b.Timings.Marks(); len(m) != 1 || m[0].Step != StepIPXE {
		t.Errorf("marks %v, want ipxe", m)
	}
}

func TestWaitIPXEFailsWhenIPXEGivesUpAndSaysWhatTheServerSaw(t *testing.T) {
	f := newFakeTarget(t)
	f.explain = "qemu exited"
	f.log(ev(pxe.KindDHCPIgnored, func(e *pxe.Event) { e.Reason = pxe.ReasonNotAllowListed }))
	b := testBoot(f, time.Minute)
	go f.print("iPXE 1.21.1+\r\nNo configuration methods succeeded (http://ipxe.org/040ee186)\r\n")
	ctx := callerCtx(t)
	_, err := b.WaitIPXE(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, console.ErrFailPattern) {
		t.Fatalf("WaitIPXE = %v, want iPXE's giving up to end the wait (not its bound)", err)
	}
	for _, want := range []string{"no DHCP answer for de:00:00:00:00:de: the PXE server ignored 1 DHCP message(s) from it (not on allow-list)", "qemu exited"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWaitIPXERunsOutItsOwnBound(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	b.Timeouts.IPXE = 50 * time.Millisecond
	ctx := callerCtx(t)
	_, err := b.WaitIPXE(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "iPXE opening the bridge interface de:00:00:00:00:de") {
		t.Errorf("WaitIPXE = %v, want the IPXE bound to end a wait named for the interface", err)
	}
}

func TestWaitDHCPMatchesTheAckToIPXE(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	f.log(ev(pxe.KindDHCPAck, func(e *pxe.Event) { e.IP, e.Firmware, e.Path = "192.168.100.10", "efi", "ipxe.efi" }),
		ev(pxe.KindDHCPAck, func(e *pxe.Event) { e.IP, e.UserClass = "192.168.100.10", "iPXE" }))
	go f.print("Configuring (net1 de:00:00:00:00:de)...... ok\r\nnet1: 192.168.100.10/255.255.255.0\r\n")
	ack, err := b.WaitDHCP(context.Background())
	if err != nil || ack.UserClass != "iPXE" {
		t.Fatalf("WaitDHCP = %+v, %v", ack, err)
	}
}

func TestWaitDHCPFailsFastWhenTheServerIgnoresTheMAC(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	for range pxe.IgnoredBeforeGivingUp {
		f.log(ev(pxe.KindDHCPIgnored, func(e *pxe.Event) { e.Reason = pxe.ReasonNotAllowListed }))
	}
	go f.print("Configuring (net1 de:00:00:00:00:de)...")
	ctx := callerCtx(t)
	_, err := b.WaitDHCP(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, ErrNoDHCPAnswer) {
		t.Fatalf("WaitDHCP = %v, want ErrNoDHCPAnswer", err)
	}
	if want := "no DHCP answer for de:00:00:00:00:de: the PXE server ignored 3 DHCP message(s) from it (not on allow-list)"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestWaitDHCPRefusesAnAddressTheServerDidNotGive(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	f.log(ev(pxe.KindDHCPAck, func(e *pxe.Event) { e.IP, e.UserClass = "192.168.100.11", "iPXE" }))
	go f.print("net1: 192.168.100.10/255.255.255.0\r\n")
	_, err := b.WaitDHCP(context.Background())
	if err == nil || err.Error() != "iPXE configured 192.168.100.10 but the PXE server acknowledged 192.168.100.11" {
		t.Errorf("WaitDHCP = %v", err)
	}
}

func TestWaitDHCPTimeoutCarriesTheServersView(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	b.Timeouts.DHCP = 100 * time.Millisecond
	ctx := callerCtx(t)
	_, err := b.WaitDHCP(ctx)
	endedOnItsOwn(t, ctx)
	if err == nil || !strings.Contains(err.Error(), "the PXE server received no DHCP message from it") {
		t.Errorf("WaitDHCP = %v, want the server's view of the MAC", err)
	}
}

func TestWaitPayloadNeedsKernelInitramfsAndNonce(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	f.log(ev(pxe.KindScript, func(e *pxe.Event) { e.Status, e.Nonce = 200, "n1" }),
		ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status, e.Bytes = "/"+bootimage.KernelFile, 200, 8 }),
		ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status, e.Bytes = "/"+bootimage.InitrdFile, 200, 3 }))
	p, err := b.WaitPayload(context.Background())
	if err != nil || p.Nonce != "n1" || p.Kernel.Bytes != 8 || p.Initrd.Bytes != 3 {
		t.Fatalf("WaitPayload = %+v, %v", p, err)
	}

	f2 := newFakeTarget(t)
	b2 := testBoot(f2, time.Hour)
	b2.Timeouts.PXEBoot = 100 * time.Millisecond
	f2.log(ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status = "/"+bootimage.KernelFile, 200 }))
	if _, err := b2.WaitPayload(context.Background()); err == nil || !strings.Contains(err.Error(), bootimage.InitrdFile+" not served to de:00:00:00:00:de over HTTP") {
		t.Errorf("WaitPayload without the initramfs = %v", err)
	}
}

func TestWaitReadyParsesAndChecksTheLine(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	fp := "SHA256:" + strings.Repeat("A", 43)
	go f.print("[    5.1] random: crng init done\r\nPXEC-READY mac=de:00:00:00:00:de iface=eth1 nonce=n1 hostkey=" + fp + "\r\n")
	r, err := b.WaitReady(context.Background())
	if err != nil || r.HostKeyFingerprint != fp {
		t.Fatalf("WaitReady = %+v, %v", r, err)
	}
	if err := b.CheckReady(r, "n1"); err != nil {
		t.Errorf("CheckReady with the served nonce: %v", err)
	}
	if err := b.CheckReady(r, "n2"); err == nil || !strings.Contains(err.Error(), "ready line nonce n1, but the PXE server's script for de:00:00:00:00:de carried n2") {
		t.Errorf("CheckReady with another nonce: %v", err)
	}
}

func TestWaitReadyFailsAtOnceOnAKernelPanic(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	go f.print("Kernel panic - not syncing: VFS: Unable to mount root fs\r\n")
	ctx := callerCtx(t)
	_, err := b.WaitReady(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, console.ErrFailPattern) {
		t.Errorf("WaitReady = %v, want the panic to end the wait", err)
	}
}

func TestCaptureScreenWaitsForTheFirmwareToDraw(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	blank := image.NewRGBA(image.Rect(0, 0, 720, 400))
	notice := image.NewRGBA(image.Rect(0, 0, 640, 480))
	notice.Set(1, 1, color.White)
	drawn := image.NewRGBA(image.Rect(0, 0, 720, 400))
	drawn.Set(3, 3, color.White)
	f.screens = []*image.RGBA{blank, notice, drawn}
	img, err := b.CaptureScreen(context.Background())
	if err != nil || img != drawn {
		t.Fatalf("CaptureScreen = %v, %v; want the drawn screen", img.Bounds(), err)
	}

	f.screens = []*image.RGBA{blank}
	b.Timeouts.Screenshot = 300 * time.Millisecond
	if _, err := b.CaptureScreen(context.Background()); err == nil || !strings.Contains(err.Error(), "the firmware never drew on the display") {
		t.Errorf("CaptureScreen of a blank display = %v", err)
	}
}

func TestSkipBootMenuPressesEnterAtSeaBIOSsPrompt(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	go f.print("SeaBIOS (version 1.16)\r\nPress ESC for boot menu.\r\n")
	b.SkipBootMenu(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		sent := f.sent.String()
		f.mu.Unlock()
		if strings.Contains(sent, "\r") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("no Enter was sent at the boot menu prompt")
}

// t0 is when the events of a test with times begin.
var t0 = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

// at is an event modifier setting its time to t0 plus s seconds.
func at(s int) func(*pxe.Event) {
	return func(e *pxe.Event) { e.Time = t0.Add(time.Duration(s) * time.Second) }
}

func ackTo(ip string) func(*pxe.Event) {
	return func(e *pxe.Event) { e.IP, e.UserClass = ip, "iPXE" }
}

// TestWaitPayloadFailsAtOnceWhenTheServerIsGone: a PXE server that died after its DHCP ACK ends
// the payload's wait at once, saying so and what had been served.
func TestWaitPayloadFailsAtOnceWhenTheServerIsGone(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	f.log(ev(pxe.KindDHCPAck, ackTo("192.168.100.10")))
	f.gone = "PXE server pod pxec-x/pxe-server: container pxe-server exited 3 (Error)"
	ctx := callerCtx(t)
	_, err := b.WaitPayload(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, pxe.ErrServerGone) {
		t.Fatalf("WaitPayload = %v, want pxe.ErrServerGone", err)
	}
	want := "payload transfer stopped: the PXE server is gone: PXE server pod pxec-x/pxe-server: container pxe-server exited 3 (Error); " +
		"it had served de:00:00:00:00:de a DHCP ACK (192.168.100.10) and nothing after"
	if err.Error() != want {
		t.Errorf("message\n %q, want\n %q", err, want)
	}
}

// TestWaitDHCPReadsTheAckOfAServerGoneSinceThen: the ACK a server logged before it died still
// proves the DHCP step; only the payload's wait fails.
func TestWaitDHCPReadsTheAckOfAServerGoneSinceThen(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	f.log(ev(pxe.KindDHCPAck, ackTo("192.168.100.10")))
	f.gone = "PXE server pod pxec-x/pxe-server: container pxe-server exited 3 (Error)"
	go f.print("net0: 192.168.100.10/255.255.255.0\r\n")
	ctx := callerCtx(t)
	ack, err := b.WaitDHCP(ctx)
	endedOnItsOwn(t, ctx)
	if err != nil || ack.IP != "192.168.100.10" {
		t.Errorf("WaitDHCP = %+v, %v; want the ACK from what the server logged", ack, err)
	}
}

// TestWaitDHCPNamesWhatDropsTheDHCPWhenIPXEGivesUpAfterIPv6 is the regression test for a run
// that waited out the DHCP bound: iPXE configured IPv6 from a router advertisement, so it never
// said "No configuration methods succeeded", and gave up with "Nothing to boot" instead.
func TestWaitDHCPNamesWhatDropsTheDHCPWhenIPXEGivesUpAfterIPv6(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, time.Hour)
	path := &fakePath{drops: "node n1 hands bridged frames to iptables (/proc/sys/net/bridge/bridge-nf-call-iptables=1) and `-A FORWARD -p udp --dport 67 -j DROP` drops DHCP"}
	b.Path = path
	go f.print("Configuring (net0 de:00:00:00:00:de)...... ok\r\nNothing to boot: No such file or directory (http://ipxe.org/2d03e13b)\r\nNo more network devices\r\n")
	ctx := callerCtx(t)
	_, err := b.WaitDHCP(ctx)
	endedOnItsOwn(t, ctx)
	if !errors.Is(err, console.ErrFailPattern) {
		t.Fatalf("WaitDHCP = %v, want iPXE's giving up to end the wait", err)
	}
	want := "no DHCP answer for de:00:00:00:00:de: the PXE server received no DHCP message from it; " + path.drops
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message\n %q, want it to start with\n %q", err, want)
	}

	// A server that heard the MAC's DHCP needs no question about the path.
	f2 := newFakeTarget(t)
	b2 := testBoot(f2, time.Hour)
	path2 := &fakePath{drops: "should not be asked"}
	b2.Path = path2
	f2.log(ev(pxe.KindDHCPIgnored, func(e *pxe.Event) { e.Protocol, e.Reason = pxe.ProtoDHCP, "unsupported client architecture" }))
	go f2.print("No configuration methods succeeded (http://ipxe.org/040ee186)\r\n")
	_, err = b2.WaitDHCP(callerCtx(t))
	if path2.asked.Load() != 0 || err == nil || strings.Contains(err.Error(), path2.drops) {
		t.Errorf("WaitDHCP = %v, asked the path %d times; want no question when the server heard the MAC", err, path2.asked.Load())
	}
}

// TestNextBootLooksOnlyAtTheNewBootsEvents: after a reboot, the steps wait for the second ACK
// and take the second script's nonce, not the first boot's.
func TestNextBootLooksOnlyAtTheNewBootsEvents(t *testing.T) {
	f := newFakeTarget(t)
	b := testBoot(f, 5*time.Second)
	f.log(ev(pxe.KindDHCPAck, ackTo("192.168.100.10"), at(1)),
		ev(pxe.KindScript, func(e *pxe.Event) { e.Status, e.Nonce = 200, "first" }, at(2)),
		ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status = "/"+bootimage.KernelFile, 200 }, at(3)),
		ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status = "/"+bootimage.InitrdFile, 200 }, at(4)))
	if err := b.NextBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.print("net0: 192.168.100.10/255.255.255.0\r\n")
		time.Sleep(300 * time.Millisecond)
		f.log(ev(pxe.KindDHCPAck, ackTo("192.168.100.10"), at(61)))
		time.Sleep(300 * time.Millisecond)
		f.log(ev(pxe.KindScript, func(e *pxe.Event) { e.Status, e.Nonce = 200, "second" }, at(62)),
			ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status = "/"+bootimage.KernelFile, 200 }, at(63)),
			ev(pxe.KindHTTP, func(e *pxe.Event) { e.Path, e.Status = "/"+bootimage.InitrdFile, 200 }, at(64)))
	}()
	ack, err := b.WaitDHCP(context.Background())
	if err != nil || !ack.Time.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("WaitDHCP = %+v, %v; want the second boot's ACK", ack, err)
	}
	p, err := b.WaitPayload(context.Background())
	if err != nil || p.Nonce != "second" || !p.Kernel.Time.After(ack.Time) {
		t.Errorf("WaitPayload = %+v, %v; want the second boot's files and nonce", p, err)
	}
}
