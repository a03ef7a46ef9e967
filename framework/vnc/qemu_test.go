package vnc

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// startQEMU runs a diskless BIOS guest with a VGA screen served over VNC on a
// unix socket, and kills it when the test ends. SeaBIOS draws its banner, finds
// nothing to boot and waits a minute before retrying, long enough to capture.
func startQEMU(ctx context.Context, t *testing.T) (sock string) {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		prereq.Missing(t, "qemu-system-x86_64 not found: "+err.Error())
	}
	sock = filepath.Join(t.TempDir(), "vnc.sock")
	// TCG rather than detected KVM: a BIOS screen needs no speed, and TCG runs
	// on every machine, including those whose /dev/kvm cannot run guests.
	cmd := exec.Command(bin, "-accel", "tcg", "-m", "64", "-nodefaults", "-no-user-config",
		"-device", "VGA", "-display", "none", "-vnc", "unix:"+sock,
		"-serial", "none", "-monitor", "none", "-no-reboot")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s\n%s", strings.Join(cmd.Args, " "), out.String())
		}
	})
	// QEMU creates the socket once it has parsed its arguments.
	for {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		select {
		case <-exited:
			t.Fatalf("%s exited before listening on %s:\n%s", strings.Join(cmd.Args, " "), sock, out.String())
		case <-ctx.Done():
			t.Fatalf("%s did not listen on %s: %v", strings.Join(cmd.Args, " "), sock, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestScreenshotOfQEMUShowsSeaBIOS(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	sock := startQEMU(ctx, t)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	c, err := Connect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("connected to %q over RFB %s", c.Name(), c.ProtocolVersion())

	// Before the firmware sets a video mode, QEMU itself paints "Guest has not
	// initialized the display (yet)." on a 640x480 screen: not blank, but not
	// the guest's either. SeaBIOS's VGA BIOS switches to 80x25 text mode,
	// 720x400 pixels, and then prints its banner.
	textMode := image.Pt(720, 400)
	var img *image.RGBA
	for {
		if img, err = c.Capture(ctx); err != nil {
			t.Fatal(err)
		}
		if img.Rect.Size() == textMode && !IsBlank(img) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("screen is %v (blank: %v), want SeaBIOS's banner in %v text mode: %v",
				img.Rect.Size(), IsBlank(img), textMode, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}

	path := filepath.Join(t.TempDir(), "seabios.png")
	if err := WritePNG(path, img); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if back.Bounds() != img.Rect || IsBlank(back) {
		t.Errorf("%s holds a %v image (blank: %v), want the %v screen", path, back.Bounds(), IsBlank(back), img.Rect)
	}
	// Keep the picture where a person can look at it.
	if dir := os.Getenv("ARTIFACTS"); dir != "" {
		keep := filepath.Join(dir, "vnc", t.Name()+".png")
		if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WritePNG(keep, img); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", keep)
	}
}
