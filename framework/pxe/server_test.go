package pxe

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
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

// sendDHCP sends m to the server's DHCP socket from an unprivileged port of loopback.
func sendDHCP(t *testing.T, srv *Server, m *dhcpv4.DHCPv4) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(srv.DHCPAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(m.ToBytes()); err != nil {
		t.Fatal(err)
	}
}

// renewal is a REQUEST from testMAC renewing its reserved address: the ACK goes to that
// address (unicast on loopback), so the send succeeds without a client listening.
func renewal(t *testing.T) *dhcpv4.DHCPv4 {
	return request(t, testMAC, arch(iana.INTEL_X86PC), ipxeClass(), dhcpv4.WithClientIP(net.ParseIP("127.0.0.2")))
}

func TestCrashAfterDHCPAckClosesEverySocketOnceTheAckIsSent(t *testing.T) {
	srv := startLoopback(t, func(c *Config) { c.CrashAfter = CrashAfterDHCPAck })
	httpAddr := srv.HTTPAddr()
	if code, _ := get(t, http.MethodGet, srv.BaseURL()+"/events"); code != http.StatusOK {
		t.Fatalf("before the ACK: GET /events answered %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
	select {
	case <-srv.Crashed():
		t.Fatal("crashed before any ACK")
	default:
	}

	sendDHCP(t, srv, renewal(t))
	select {
	case <-srv.Crashed():
	case <-time.After(20 * time.Second):
		t.Fatalf("no crash 20 s after the REQUEST; events: %s", kinds(srv.Events(nil)))
	}
	if got := kinds(srv.Events(testMAC)); got != "dhcp-request,dhcp-ack" {
		t.Errorf("events %s, want the REQUEST and its ACK, sent before the crash", got)
	}
	if c, err := net.DialTimeout("tcp", httpAddr.String(), 5*time.Second); err == nil {
		c.Close()
		t.Errorf("HTTP %s still accepts connections after the crash", httpAddr)
	}
}

func TestWithoutCrashAfterTheServerGoesOnAfterAnAck(t *testing.T) {
	srv := startLoopback(t, nil)
	sendDHCP(t, srv, renewal(t))
	waitEvent(t, srv, testMAC, KindDHCPAck)
	if code, _ := get(t, http.MethodGet, srv.BaseURL()+"/events"); code != http.StatusOK {
		t.Errorf("after the ACK: GET /events answered %d", code)
	}
	select {
	case <-srv.Crashed():
		t.Error("crashed without CrashAfter")
	default:
	}
}

func TestEventsFromLogReadsBackWhatTheServerLogged(t *testing.T) {
	var log strings.Builder
	l := newEventLog(slog.New(slog.NewJSONHandler(&log, nil)).With("component", "pxe"))
	when := time.Date(2026, 12, 7, 4, 29, 8, 123456789, time.UTC)
	ack := Event{Time: when, MAC: "de:00:00:00:00:de", Kind: KindDHCPAck, Protocol: ProtoDHCP, IP: "192.168.100.10",
		Firmware: "bios", UserClass: "iPXE", Duration: 1500 * time.Millisecond, Bytes: 42, Status: 200}
	l.record(ack)
	l.record(Event{Time: when, MAC: "de:00:00:00:00:01", Kind: KindDHCPDiscover, Protocol: ProtoDHCP})
	text := "pxe-server: not JSON at all\n" + log.String() + `{"msg":"something else","kind":"dhcp-ack"}` + "\n"

	got, err := EventsFromLog(strings.NewReader(text), "de:00:00:00:00:de")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Time.Equal(when) || got[0].Kind != ack.Kind || got[0].IP != ack.IP || got[0].Firmware != "bios" ||
		got[0].UserClass != "iPXE" || got[0].Duration != ack.Duration || got[0].Bytes != 42 || got[0].Status != 200 {
		t.Fatalf("events from the log %+v, want the ACK %+v alone", got, ack)
	}
	all, err := EventsFromLog(strings.NewReader(text), "")
	if err != nil || len(all) != 2 {
		t.Errorf("every MAC's events: %+v, %v; want the two recorded", all, err)
	}
}
