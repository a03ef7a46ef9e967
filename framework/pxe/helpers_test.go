package pxe

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Payload files every test root holds; the contents differ so a test can
// tell which file it got.
var testFiles = map[string]string{
	"vmlinuz":        "kernel image bytes\n",
	"initrd.img":     "initramfs bytes, a little longer than the kernel\n",
	BIOSLoader:       "undionly\n",
	EFILoader:        "ipxe efi\n",
	"sub/nested.txt": "nested file\n",
}

var (
	testMAC   = mustMAC("de:00:00:00:00:de")
	otherMAC  = mustMAC("de:00:00:00:00:01")
	strangerM = mustMAC("02:aa:bb:cc:dd:ee")
)

func mustMAC(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

// testRoot makes a root directory with the payload files.
func testRoot(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range testFiles {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loopbackConfig is a valid config whose sockets all live on 127.0.0.1 with
// ports chosen by the kernel, so tests never collide with each other.
func loopbackConfig(t testing.TB) Config {
	t.Helper()
	return Config{
		Interface: "lo",
		ServerIP:  netip.MustParseAddr("127.0.0.1"),
		Subnet:    netip.MustParsePrefix("127.0.0.0/8"),
		Reservations: []Reservation{
			{MAC: testMAC, IP: netip.MustParseAddr("127.0.0.1").Next(), Hostname: "pxec-guest", KernelArgs: []string{"pxec.password=secret"}},
			{MAC: otherMAC, IP: netip.MustParseAddr("127.0.0.3")},
		},
		Root:     testRoot(t),
		Boot:     Boot{Kernel: "vmlinuz", Initrd: "initrd.img", Cmdline: "console=ttyS0,115200 quiet"},
		HTTPAddr: "127.0.0.1:0",
		TFTPAddr: "127.0.0.1:0",
		DHCPAddr: "127.0.0.1:0",
	}
}

// startLoopback starts a server from loopbackConfig after mutate, and stops it at cleanup.
func startLoopback(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	cfg := loopbackConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

// waitEvent waits for an event of mac of the given kind, failing the test after a generous bound.
func waitEvent(t *testing.T, srv *Server, mac net.HardwareAddr, kind EventKind) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ev, err := srv.WaitFor(ctx, mac, func(e Event) bool { return e.Kind == kind })
	if err != nil {
		t.Fatalf("no %s event for %v: %v; events: %+v", kind, mac, err, srv.Events(nil))
	}
	return ev
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
