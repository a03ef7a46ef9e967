package pxe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStopReleasesSocketsAndGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := loopbackConfig(t)
	srv, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Exercise every listener once so Stop has real work to undo.
	get(t, http.MethodGet, srv.BaseURL()+"/vmlinuz")
	http.DefaultClient.CloseIdleConnections()
	rawRRQ(t, srv, "127.0.0.1", "vmlinuz", "tsize", "0")
	waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP })
	httpAddr, tftpAddr, dhcpAddr := srv.HTTPAddr(), srv.TFTPAddr(), srv.DHCPAddr()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	// The exact ports are free again.
	ln, err := net.Listen("tcp", httpAddr.String())
	if err != nil {
		t.Errorf("HTTP port still taken: %v", err)
	} else {
		ln.Close()
	}
	for name, addr := range map[string]string{"TFTP": tftpAddr.String(), "DHCP": dhcpAddr.String()} {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Errorf("%s port still taken: %v", name, err)
		} else {
			pc.Close()
		}
	}
	// Goroutines Start began are gone (allow the runtime's own to settle).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Stop, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestWaitForSeesPastAndFutureEvents(t *testing.T) {
	l := newEventLog(discardLogger())
	l.record(Event{MAC: "de:00:00:00:00:de", Kind: KindDHCPDiscover})

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	past, err := l.waitFor(ctx, "de:00:00:00:00:de", nil)
	if err != nil || past.Kind != KindDHCPDiscover {
		t.Fatalf("past event: %+v, %v", past, err)
	}

	got := make(chan Event, 1)
	go func() {
		ev, err := l.waitFor(ctx, "de:00:00:00:00:de", func(e Event) bool { return e.Kind == KindScript })
		if err != nil {
			t.Error(err)
		}
		got <- ev
	}()
	l.record(Event{MAC: "02:00:00:00:00:01", Kind: KindScript}) // other MAC: no match
	l.record(Event{MAC: "de:00:00:00:00:de", Kind: KindDHCPOffer})
	l.record(Event{MAC: "de:00:00:00:00:de", Kind: KindScript, Nonce: "n1"})
	if ev := <-got; ev.Nonce != "n1" {
		t.Errorf("future event %+v, want the script with nonce n1", ev)
	}
}

func TestWaitForEndsWithContextOrStop(t *testing.T) {
	l := newEventLog(discardLogger())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.waitFor(ctx, "", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v, want context.Canceled", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := l.waitFor(t.Context(), "", func(Event) bool { return false })
		done <- err
	}()
	l.close()
	if err := <-done; !errors.Is(err, errStopped) {
		t.Errorf("wait across stop: %v, want errStopped", err)
	}
	l.record(Event{Kind: KindHTTP}) // recording after close must not panic
}

func TestEventLogStaysBounded(t *testing.T) {
	l := newEventLog(discardLogger())
	for i := range maxEvents + 10 {
		l.record(Event{Kind: KindHTTP, Bytes: int64(i)})
	}
	evs := l.list("")
	if len(evs) > maxEvents {
		t.Fatalf("%d events kept, limit %d", len(evs), maxEvents)
	}
	if last := evs[len(evs)-1]; last.Bytes != maxEvents+9 {
		t.Errorf("newest event lost: last has %d", last.Bytes)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ev, err := l.waitFor(ctx, "", func(e Event) bool { return e.Bytes == maxEvents+9 })
	if err != nil || ev.Bytes != maxEvents+9 {
		t.Errorf("wait after trimming: %+v, %v", ev, err)
	}
}

// Issue 13: a burst of 1,000 DHCP clients overflowed the DHCP socket's
// default receive buffer (208 KiB): every request was answered in the end,
// but about 800 only after their client's retransmission. Both UDP sockets
// must get the buffer asked for, or as much as net.core.rmem_max allows a
// server without CAP_NET_ADMIN.
func TestUDPSocketsGetReceiveBufferForABurst(t *testing.T) {
	srv := startLoopback(t, nil)
	want := 2 * receiveBuffer
	if unix.Geteuid() != 0 {
		b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
		if err != nil {
			t.Fatal(err)
		}
		rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("net.core.rmem_max %q: %v", b, err)
		}
		want = 2 * min(receiveBuffer, rmemMax)
	}
	raw, err := srv.dhcpConn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dhcp int
	var serr error
	if err := raw.Control(func(fd uintptr) { dhcp, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || serr != nil {
		t.Fatalf("get the DHCP socket's SO_RCVBUF: %v %v", err, serr)
	}
	tftp, err := unix.GetsockoptInt(srv.tftp.sock.fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		t.Fatalf("get the TFTP socket's SO_RCVBUF: %v", err)
	}
	if dhcp < want || tftp < want {
		t.Errorf("receive buffers: DHCP %d bytes, TFTP %d, want at least %d", dhcp, tftp, want)
	}
}
