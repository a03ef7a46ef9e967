package lab

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// requireLab skips a test that needs root and QEMU where they are missing, except under CI,
// where the lab must run.
func requireLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU guests; skipped with -short")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, tap devices)")
	}
	for _, bin := range []string{"qemu-system-x86_64", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "the lab needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: the lab must run in CI)")
	}
	t.Skip(msg)
}

var (
	payloadOnce sync.Once
	payload     *bootimage.Payload
	payloadErr  error
	accel       qemu.Accel
)

// testPayload builds the guest payload once per test binary and picks the accelerator.
func testPayload(t *testing.T) (*bootimage.Payload, qemu.Accel) {
	t.Helper()
	payloadOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		payload, payloadErr = bootimage.Build(ctx, bootimage.Config{Logf: t.Logf})
		if payloadErr == nil {
			var why string
			accel, why, payloadErr = qemu.DetectAccel(ctx, payload.Kernel)
			t.Log("accelerator:", why)
		}
	})
	if payloadErr != nil {
		t.Fatalf("guest payload: %v", payloadErr)
	}
	return payload, accel
}

// startLab starts a lab for one test and stops it when the test ends.
func startLab(t *testing.T, ctx context.Context, allow ...net.HardwareAddr) *Lab {
	t.Helper()
	p, _ := testPayload(t)
	l, err := Start(ctx, Config{Payload: p, Allow: allow})
	t.Cleanup(func() {
		if l == nil {
			return
		}
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var nsPath string
		if l.NS != nil {
			nsPath = l.NS.Path()
		}
		if err := l.Stop(c); err != nil {
			t.Errorf("stop lab: %v", err)
		}
		if _, err := os.Stat(nsPath); nsPath != "" && err == nil {
			t.Errorf("namespace %s still exists after Stop", nsPath)
		}
	})
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	return l
}

// keepGuest stops the guest when the test ends and, when the test failed, saves its console
// transcript under $ARTIFACTS/lab.
func keepGuest(t *testing.T, g *Guest) {
	t.Helper()
	if g == nil {
		return
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(c)
		if !t.Failed() || g.Console == nil {
			return
		}
		dir := os.Getenv("ARTIFACTS")
		if dir == "" {
			dir = t.TempDir()
		}
		path := filepath.Join(dir, "lab", strings.ReplaceAll(t.Name(), "/", "_")+"-console.log")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil && g.Console.WriteTranscript(path) == nil {
			t.Logf("console transcript: %s", path)
		}
	})
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPXEBootFollowsTheDocumentedProcedure(t *testing.T) {
	requireLab(t)
	for _, fw := range []firmware.Firmware{firmware.BIOS, firmware.EFI} {
		t.Run(string(fw), func(t *testing.T) {
			p, accel := testPayload(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			mac := mustMAC(t, settings.DefaultMAC)
			l := startLab(t, ctx, mac)
			v := NewVerdict(string(fw), nil)
			g, res, err := l.Boot(ctx, GuestConfig{Name: "pxe-" + string(fw), MAC: mac, Firmware: fw, Accel: accel, VNC: true}, TimeoutsFor(accel), v)
			keepGuest(t, g)
			if err != nil {
				var b strings.Builder
				v.Print(&b)
				t.Fatalf("procedure failed: %v\n%s", err, b.String())
			}

			// The PXE server's log for this MAC: DHCP ACK, then the kernel and initramfs, whole.
			var acked bool
			served := map[string]int64{}
			for _, e := range res.Events {
				if e.MAC != mac.String() {
					t.Errorf("Events(%s) returned an event for %q", mac, e.MAC)
				}
				switch {
				case e.Kind == pxe.KindDHCPAck:
					acked = true
				case e.Kind == pxe.KindHTTP && e.Status == 200:
					served[e.Path] = e.Bytes
				}
			}
			if !acked {
				t.Errorf("the PXE server logged no DHCP ACK for %s", mac)
			}
			for path, file := range map[string]string{"/" + bootimage.KernelFile: p.Kernel, "/" + bootimage.InitrdFile: p.Initrd} {
				st, err := os.Stat(file)
				if err != nil {
					t.Fatal(err)
				}
				if served[path] != st.Size() {
					t.Errorf("%s served %d bytes over HTTP to %s, want the whole %d", path, served[path], mac, st.Size())
				}
			}

			// The console showed iPXE and the ready line with the right MAC and nonce.
			text := g.Console.Text()
			if !strings.Contains(text, "iPXE") {
				t.Error("the console never showed iPXE")
			}
			if !regexp.MustCompile(bootimage.ReadyPattern).MatchString(text) {
				t.Error("the console never showed the ready line")
			}
			if res.Ready.MAC.String() != mac.String() || res.Ready.Iface != "eth1" {
				t.Errorf("ready line: MAC %s on %s, want %s on eth1", res.Ready.MAC, res.Ready.Iface, mac)
			}
			if res.Nonce == "" || res.Ready.Nonce != res.Nonce {
				t.Errorf("ready line nonce %q, want the served script's %q", res.Ready.Nonce, res.Nonce)
			}

			// The boot screen was captured over VNC.
			if res.Screenshot == nil || vnc.IsBlank(res.Screenshot) {
				t.Error("no boot screen was captured over VNC")
			} else if dir := os.Getenv("ARTIFACTS"); dir != "" && os.MkdirAll(filepath.Join(dir, "lab"), 0o755) == nil {
				_ = vnc.WritePNG(filepath.Join(dir, "lab", "boot-screen-"+string(fw)+".png"), res.Screenshot)
			}

			// SSH with the pinned host key worked, and the interfaces are as documented.
			if res.SSHVerified == 0 {
				t.Error("SSH was never verified")
			}
			eth1, ok := guestssh.InterfaceByName(res.Interfaces, "eth1")
			if !ok || eth1.MAC.String() != mac.String() || len(eth1.IPv4)+len(eth1.IPv6) != 0 || eth1.Up {
				t.Errorf("eth1 = %+v, want %s, down, no IPv4 or IPv6 address", eth1, mac)
			}
			eth0, ok := guestssh.InterfaceByName(res.Interfaces, "eth0")
			if !ok || len(eth0.IPv4) == 0 {
				t.Errorf("eth0 = %+v, want an IPv4 address", eth0)
			}
			t.Logf("%s: SSH verified %.2fs after QEMU started", fw, res.SSHVerified.Seconds())
		})
	}
}

func TestUnknownMACGetsNoDHCPAnswer(t *testing.T) {
	requireLab(t)
	_, accel := testPayload(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	known, unknown := mustMAC(t, settings.DefaultMAC), mustMAC(t, "de:00:00:00:00:ad")
	l := startLab(t, ctx, known)
	v := NewVerdict("unknown MAC", nil)
	g, _, err := l.Boot(ctx, GuestConfig{Name: "pxe-unknown", MAC: unknown, Firmware: firmware.BIOS, Accel: accel}, TimeoutsFor(accel), v)
	keepGuest(t, g)
	if err == nil {
		t.Fatal("a guest whose MAC is not on the allow-list booted")
	}
	want := "no DHCP answer for de:00:00:00:00:ad: the PXE server ignored"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), pxe.ReasonNotAllowListed) {
		t.Errorf("error = %v\nwant it to say %q ... %q", err, want, pxe.ReasonNotAllowListed)
	}
	if !strings.HasPrefix(err.Error(), "PXE server answers the VM's DHCP") {
		t.Errorf("failed at the wrong step: %v", err)
	}
	// Router advertisements answer anyone on the segment; DHCP, scripts and files must not.
	ignored := 0
	for _, e := range l.PXE.Events(unknown) {
		switch {
		case e.Kind == pxe.KindDHCPIgnored:
			ignored++
		case e.Protocol != pxe.ProtoNDP:
			t.Errorf("the PXE server did more than ignore the unknown MAC: %+v", e)
		}
	}
	if ignored == 0 {
		t.Error("the PXE server logged no ignored DHCP message for the unknown MAC")
	}
}

func TestNICWithoutBootOrderIsNeverTried(t *testing.T) {
	requireLab(t)
	_, accel := testPayload(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mac := mustMAC(t, settings.DefaultMAC)
	l := startLab(t, ctx, mac)
	g, err := l.StartGuest(ctx, GuestConfig{Name: "no-boot-order", MAC: mac, Firmware: firmware.BIOS, Accel: accel, NoBootOrder: true})
	keepGuest(t, g)
	if err != nil {
		t.Fatal(err)
	}
	// SeaBIOS runs out of boot devices without ever starting iPXE.
	c, cancel := context.WithTimeout(ctx, TimeoutsFor(accel).DHCP)
	defer cancel()
	if _, err := g.Console.Expect(c, regexp.MustCompile(`No bootable device`)); err != nil {
		t.Fatalf("SeaBIOS did not give up: %v", err)
	}
	text := g.Console.Text()
	if !strings.Contains(text, "SeaBIOS") {
		t.Errorf("the console shows no SeaBIOS banner, so this proves nothing:\n%s", text)
	}
	if strings.Contains(text, "iPXE") {
		t.Error("iPXE ran on a NIC without boot order")
	}
	if ev := l.PXE.Events(mac); len(ev) != 0 {
		t.Errorf("the PXE server heard from a NIC without boot order: %+v", ev)
	}
}
