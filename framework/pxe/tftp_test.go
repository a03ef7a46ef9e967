package pxe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// bigFile spans several blocks at every block size the tests use.
const bigFileSize = 50_000

func startTFTPServer(t *testing.T) (*Server, []byte) {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), bigFileSize/16+1)[:bigFileSize]
	srv := startLoopback(t, func(c *Config) {
		if err := os.WriteFile(filepath.Join(c.Root, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	return srv, big
}

func TestTFTPTransferWithTsizeAndBlksize(t *testing.T) {
	srv, big := startTFTPServer(t)
	for _, blksize := range []int{0, 512, 1024, 1432} {
		t.Run("blksize "+strconv.Itoa(blksize), func(t *testing.T) {
			c, err := tftp.NewClient(srv.TFTPAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.SetTimeout(5 * time.Second)
			c.RequestTSize(true)
			if blksize != 0 {
				c.SetBlockSize(blksize)
			}
			wt, err := c.Receive("big.bin", "octet")
			if err != nil {
				t.Fatalf("receive big.bin: %v", err)
			}
			if n, ok := wt.(tftp.IncomingTransfer).Size(); !ok || n != bigFileSize {
				t.Errorf("tsize = %d (sent: %v), want %d", n, ok, bigFileSize)
			}
			var buf bytes.Buffer
			n, err := wt.WriteTo(&buf)
			if err != nil {
				t.Fatalf("transfer: %v", err)
			}
			if n != bigFileSize || !bytes.Equal(buf.Bytes(), big) {
				t.Fatalf("got %d bytes, want the %d bytes of big.bin", n, bigFileSize)
			}
		})
	}
	// The server records a transfer when the final ACK arrives, which may be
	// after the client returned: wait for the fourth.
	seen := 0
	waitEventMatching(t, srv, func(e Event) bool {
		if e.Kind == KindTFTP {
			seen++
		}
		return seen == 4
	})
	var evs []Event
	for _, ev := range srv.Events(nil) {
		if ev.Kind == KindTFTP {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 4 {
		t.Fatalf("tftp events %+v, want 4", evs)
	}
	for _, ev := range evs {
		if ev.Path != "big.bin" || ev.Bytes != bigFileSize || ev.Reason != "" || ev.Duration <= 0 || ev.Protocol != ProtoTFTP {
			t.Errorf("event %+v, want a complete big.bin transfer", ev)
		}
	}
}

// rawRRQ sends one read request from local and returns the server's first
// answer: the options of an OACK, or the message of an ERROR.
func rawRRQ(t *testing.T, srv *Server, local string, name string, opts ...string) (oack map[string]string, errMsg string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", local+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pkt := []byte{0, 1}
	for _, f := range append([]string{name, "octet"}, opts...) {
		pkt = append(append(pkt, f...), 0)
	}
	dst := net.UDPAddrFromAddrPort(srv.TFTPAddr())
	if _, err := conn.WriteTo(pkt, dst); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer to RRQ %q: %v", name, err)
	}
	if from.String() != dst.String() {
		t.Errorf("answer came from %s, want the listening socket %s (single-port mode)", from, dst)
	}
	b := buf[:n]
	switch binary.BigEndian.Uint16(b) {
	case 6: // OACK
		fields := strings.Split(strings.TrimSuffix(string(b[2:]), "\x00"), "\x00")
		oack = map[string]string{}
		for i := 0; i+1 < len(fields); i += 2 {
			oack[fields[i]] = fields[i+1]
		}
		// Abort politely so the server's transfer ends now.
		conn.WriteTo([]byte{0, 5, 0, 0, 'b', 'y', 'e', 0}, from)
		return oack, ""
	case 5: // ERROR
		return nil, strings.TrimSuffix(string(b[4:]), "\x00")
	default:
		conn.WriteTo([]byte{0, 5, 0, 0, 'b', 'y', 'e', 0}, from)
		return nil, ""
	}
}

func TestTFTPNegotiatesOptions(t *testing.T) {
	srv, _ := startTFTPServer(t)
	oack, msg := rawRRQ(t, srv, "127.0.0.1", "big.bin", "blksize", "1432", "tsize", "0")
	if oack == nil {
		t.Fatalf("no OACK (error %q)", msg)
	}
	if oack["blksize"] != "1432" || oack["tsize"] != strconv.Itoa(bigFileSize) {
		t.Errorf("OACK %v, want blksize 1432 and tsize %d", oack, bigFileSize)
	}
	// The client aborted after the OACK; the server records the transfer as failed.
	ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == "big.bin" })
	if !strings.Contains(ev.Reason, "bye") {
		t.Errorf("aborted transfer recorded as %+v, want the client's error message", ev)
	}
}

func TestTFTPRefusesTraversalAbsoluteAndWrites(t *testing.T) {
	srv, _ := startTFTPServer(t)
	for _, name := range []string{"../etc/passwd", "/etc/passwd", "sub", "missing.bin"} {
		oack, msg := rawRRQ(t, srv, "127.0.0.1", name, "tsize", "0")
		if oack != nil || msg == "" {
			t.Errorf("RRQ %q: OACK %v error %q, want an ERROR packet", name, oack, msg)
		}
		if strings.Contains(msg, srv.cfg.Root) {
			t.Errorf("RRQ %q: error %q reveals the root path", name, msg)
		}
		ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == name })
		if ev.Reason == "" || ev.Bytes != 0 {
			t.Errorf("RRQ %q recorded as %+v, want a refusal", name, ev)
		}
	}

	c, err := tftp.NewClient(srv.TFTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(5 * time.Second)
	c.SetRetries(1)
	if rf, err := c.Send("uploaded.bin", "octet"); err == nil {
		_, err = rf.ReadFrom(strings.NewReader("data"))
		if err == nil {
			t.Error("write request accepted")
		}
	}
	if _, err := os.Stat(filepath.Join(srv.cfg.Root, "uploaded.bin")); err == nil {
		t.Error("write request created a file under the root")
	}
	ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == "uploaded.bin" })
	if ev.Reason != errWriteRefused.Error() {
		t.Errorf("write recorded as %+v, want reason %q", ev, errWriteRefused)
	}
}

func TestTFTPAttributesTransfersToReservationByAddress(t *testing.T) {
	srv, _ := startTFTPServer(t)
	reserved := loopbackConfig(t).Reservations[0].IP.String()
	if oack, msg := rawRRQ(t, srv, reserved, "vmlinuz", "tsize", "0"); oack == nil {
		t.Fatalf("no OACK: %q", msg)
	}
	ev := waitEvent(t, srv, testMAC, KindTFTP)
	if ev.Path != "vmlinuz" || !strings.HasPrefix(ev.Remote, reserved+":") {
		t.Errorf("event %+v, want vmlinuz from %s", ev, reserved)
	}
}

func waitEventMatching(t *testing.T, srv *Server, match func(Event) bool) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ev, err := srv.WaitFor(ctx, nil, match)
	if err != nil {
		t.Fatalf("no matching event: %v; events %+v", err, srv.Events(nil))
	}
	return ev
}

// tftpPeer is a hand-driven TFTP client on one UDP port, for tests that
// need to lose, withhold or reorder packets.
type tftpPeer struct {
	t    *testing.T
	conn *net.UDPConn
	dst  netip.AddrPort
}

func newTFTPPeer(t *testing.T, srv *Server) *tftpPeer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &tftpPeer{t: t, conn: conn, dst: srv.TFTPAddr()}
}

// rrq asks for name in octet mode with options (name, value, ...); with
// none, blocks are 512 bytes and the first answer is block 1.
func (p *tftpPeer) rrq(name string, options ...string) {
	p.t.Helper()
	p.send(rrqPacket(name, options...))
}

func rrqPacket(name string, options ...string) []byte {
	pkt := []byte{0, tftpRRQ}
	for _, f := range append([]string{name, "octet"}, options...) {
		pkt = append(append(pkt, f...), 0)
	}
	return pkt
}

// addr is the peer's address, its transfer identifier.
func (p *tftpPeer) addr() netip.AddrPort {
	return p.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (p *tftpPeer) ack(block uint16) {
	p.t.Helper()
	p.send([]byte{0, tftpACK, byte(block >> 8), byte(block)})
}

func (p *tftpPeer) send(pkt []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(pkt, p.dst); err != nil {
		p.t.Fatal(err)
	}
}

// data returns the next DATA packet's block number and payload, failing on anything else.
func (p *tftpPeer) data() (uint16, []byte) {
	p.t.Helper()
	op, block, b := p.packet()
	if op != tftpDATA {
		p.t.Fatalf("got opcode %d %q, want a DATA packet", op, b)
	}
	return block, b
}

// packet returns the next packet's opcode, the two bytes after it (a
// block number or an error code) and the rest.
func (p *tftpPeer) packet() (op, block uint16, rest []byte) {
	p.t.Helper()
	buf := make([]byte, 2048)
	p.conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a guard against a hang, not an assertion
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("no packet from the server: %v", err)
	}
	if n < 4 {
		p.t.Fatalf("got %q, want a TFTP packet", buf[:n])
	}
	return binary.BigEndian.Uint16(buf), binary.BigEndian.Uint16(buf[2:]), buf[4:n]
}

// fetch reads name to the end with no loss and returns its bytes.
func (p *tftpPeer) fetch(name string) []byte {
	p.t.Helper()
	p.rrq(name)
	var got []byte
	for want := uint16(1); ; want++ {
		block, b := p.data()
		if block != want {
			p.t.Fatalf("%s: block %d, want %d", name, block, want)
		}
		got = append(got, b...)
		p.ack(block)
		if len(b) < 512 {
			return got
		}
	}
}

// Issue 13, defect 3: pin/tftp took a new request from the port of a
// transfer it still tracked for a packet of that transfer and dropped it,
// so a client that gave a transfer up, or missed the end of one, and asked
// again from the same port was never answered.
func TestTFTPServesNewRequestFromPortOfEarlierTransfer(t *testing.T) {
	srv, _ := startTFTPServer(t)
	p := newTFTPPeer(t, srv)

	// Give a transfer up after its first block and ask for another file at once.
	p.rrq("big.bin")
	if block, _ := p.data(); block != 1 {
		t.Fatalf("first block of big.bin is %d, want 1", block)
	}
	if got := string(p.fetch("vmlinuz")); got != testFiles["vmlinuz"] {
		t.Fatalf("after giving big.bin up, the same port got %.60q..., want vmlinuz", got)
	}
	// Ask again the moment the last ACK has gone.
	if got := string(p.fetch("initrd.img")); got != testFiles["initrd.img"] {
		t.Fatalf("right after a complete transfer, the same port got %.60q..., want initrd.img", got)
	}

	abandoned := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == "big.bin" })
	if !strings.Contains(abandoned.Reason, "new request") {
		t.Errorf("given-up transfer recorded as %+v, want a reason naming the new request", abandoned)
	}
	for _, name := range []string{"vmlinuz", "initrd.img"} {
		ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == name })
		if ev.Reason != "" || ev.Bytes != int64(len(testFiles[name])) {
			t.Errorf("%s recorded as %+v, want a complete transfer", name, ev)
		}
	}
}

// A lost ACK leaves the server waiting: it must send the unacknowledged
// block again, and the transfer must still complete.
func TestTFTPTransferSurvivesLostACK(t *testing.T) {
	srv, big := startTFTPServer(t)
	p := newTFTPPeer(t, srv)
	p.rrq("big.bin")
	const lost = 3
	var got []byte
	sawLost := 0
	for want := uint16(1); ; {
		block, b := p.data()
		if block != want {
			t.Fatalf("block %d, want %d", block, want)
		}
		if block == lost {
			sawLost++
			if sawLost == 1 {
				continue // this ACK is "lost": say nothing, wait for block 3 again
			}
		}
		got = append(got, b...)
		p.ack(block)
		want++
		if len(b) < 512 {
			break
		}
	}
	if sawLost != 2 {
		t.Errorf("block %d arrived %d times, want twice (sent again after the lost ACK)", lost, sawLost)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("got %d bytes, want the %d bytes of big.bin", len(got), len(big))
	}
	ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == "big.bin" })
	if ev.Reason != "" || ev.Bytes != bigFileSize {
		t.Errorf("transfer recorded as %+v, want complete", ev)
	}
}

// newLooplessTFTPServer is a TFTP side for srv on a loopback socket of its
// own that no loop reads: the test drives it through handle, resend and
// flush, one turn at a time, as the loop would.
func newLooplessTFTPServer(tb testing.TB, srv *Server) *tftpServer {
	tb.Helper()
	sock, err := listenTFTP("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ts := newTFTPServer(srv, sock)
	tb.Cleanup(func() {
		ts.stopAll()
		sock.close()
	})
	return ts
}

// Each transfer has its own retransmission time: the loop's wait for
// datagrams must end at the earliest, even when a transfer with a longer
// timeout set it first.
func TestTFTPResendsEachTransferAtItsOwnTimeout(t *testing.T) {
	t.Parallel()
	srv, _ := startTFTPServer(t)
	slow, fast := newTFTPPeer(t, srv), newTFTPPeer(t, srv)
	// Neither acknowledges block 1; the slow one asked first.
	slow.rrq("big.bin", "timeout", "4")
	if op, _, b := slow.packet(); op != tftpOACK {
		t.Fatalf("slow: got opcode %d %q, want an OACK", op, b)
	}
	slow.ack(0)
	fast.rrq("big.bin", "timeout", "1")
	if op, _, b := fast.packet(); op != tftpOACK {
		t.Fatalf("fast: got opcode %d %q, want an OACK", op, b)
	}
	fast.ack(0)
	type arrival struct {
		who   string
		block uint16
	}
	arrivals := make(chan arrival, 8)
	for who, p := range map[string]*tftpPeer{"slow": slow, "fast": fast} {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, _, err := p.conn.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				if n >= 4 && binary.BigEndian.Uint16(buf) == tftpDATA {
					arrivals <- arrival{who, binary.BigEndian.Uint16(buf[2:])}
				}
			}
		}()
	}
	slow.conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // guards against a hang, not assertions
	fast.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []arrival
	for len(got) < 5 {
		select {
		case a := <-arrivals:
			got = append(got, a)
		case <-time.After(30 * time.Second):
			t.Fatalf("arrivals %v, want five", got)
		}
	}
	// Block 1 to each, then the fast one's again after 1 s and 2 s, both
	// before the slow one's after 4 s.
	if want := (arrival{"fast", 1}); got[2] != want || got[3] != want {
		t.Errorf("arrivals %v, want the fast transfer's block 1 sent again twice before the slow one's", got)
	}
}

// A client that never acknowledges gets the block tftpRetries more times,
// then the transfer is given up and recorded as such.
func TestTFTPGivesUpAfterRetries(t *testing.T) {
	t.Parallel()
	srv, _ := startTFTPServer(t)
	p := newTFTPPeer(t, srv)
	p.rrq("big.bin", "timeout", "1")
	if op, _, b := p.packet(); op != tftpOACK {
		t.Fatalf("got opcode %d %q, want an OACK", op, b)
	}
	p.ack(0)
	for range tftpRetries + 1 {
		if block, _ := p.data(); block != 1 {
			t.Fatalf("block %d, want 1 again", block)
		}
	}
	ev := waitEventMatching(t, srv, func(e Event) bool { return e.Kind == KindTFTP && e.Path == "big.bin" })
	if !strings.Contains(ev.Reason, "no acknowledgement of block 1") || ev.Bytes != 0 {
		t.Errorf("transfer recorded as %+v, want given up at block 1", ev)
	}
	// Another retransmission would come within a second.
	p.conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	if n, _, err := p.conn.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Errorf("got a %d-byte packet after the transfer was given up", n)
	}
}

// One turn of the loop answers the ACKs of many transfers with one batch:
// each client must get its own next block, whole.
func TestTFTPBatchAnswersEachTransferWithItsOwnBlock(t *testing.T) {
	srv, big := startTFTPServer(t)
	ts := newLooplessTFTPServer(t, srv)
	peers := make([]*tftpPeer, 5)
	ts.now = time.Now()
	for i := range peers {
		peers[i] = newTFTPPeer(t, srv)
		ts.handle(rrqPacket("big.bin"), peers[i].addr(), netip.Addr{})
	}
	ts.flush()
	for i, p := range peers {
		if block, b := p.data(); block != 1 || !bytes.Equal(b, big[:512]) {
			t.Fatalf("peer %d: block %d, want block 1", i, block)
		}
	}
	// Peer i has acknowledged i+1 blocks when the next turn comes.
	for i, p := range peers {
		for block := uint16(1); block <= uint16(i); block++ {
			ts.handle([]byte{0, tftpACK, 0, byte(block)}, p.addr(), netip.Addr{})
			ts.flush()
			p.data()
		}
	}
	for i, p := range peers {
		ts.handle([]byte{0, tftpACK, 0, byte(i + 1)}, p.addr(), netip.Addr{})
	}
	if len(ts.out) != len(peers) {
		t.Fatalf("%d packets queued in one turn, want %d", len(ts.out), len(peers))
	}
	ts.flush()
	for i, p := range peers {
		want := i + 2
		if block, b := p.data(); int(block) != want || !bytes.Equal(b, big[(want-1)*512:want*512]) {
			t.Errorf("peer %d: block %d, want block %d with its bytes", i, block, want)
		}
	}
}

// A client that acknowledges a block in the same turn as the one before
// it (ahead of having seen it) still gets that block, with its own bytes,
// before the next.
func TestTFTPSendsBlockAcknowledgedAheadBeforeTheNext(t *testing.T) {
	srv, big := startTFTPServer(t)
	ts := newLooplessTFTPServer(t, srv)
	p := newTFTPPeer(t, srv)
	ts.now = time.Now()
	ts.handle(rrqPacket("big.bin"), p.addr(), netip.Addr{})
	ts.flush()
	if block, _ := p.data(); block != 1 {
		t.Fatalf("block %d, want 1", block)
	}
	ts.handle([]byte{0, tftpACK, 0, 1}, p.addr(), netip.Addr{})
	ts.handle([]byte{0, tftpACK, 0, 2}, p.addr(), netip.Addr{})
	ts.flush()
	for _, want := range []int{2, 3} {
		if block, b := p.data(); int(block) != want || !bytes.Equal(b, big[(want-1)*512:want*512]) {
			t.Fatalf("block %d (%d bytes), want block %d with its bytes", block, len(b), want)
		}
	}
}

// A request longer than the loop reads at once is refused, not parsed cut short.
func TestTFTPRefusesRequestLongerThanItReads(t *testing.T) {
	srv, _ := startTFTPServer(t)
	p := newTFTPPeer(t, srv)
	p.rrq("big.bin", "x-padding", strings.Repeat("p", tftpMaxRequest))
	op, code, msg := p.packet()
	if op != tftpERROR || code != tftpErrIllegal || !strings.Contains(string(msg), "longer than") {
		t.Fatalf("got opcode %d code %d %q, want an ERROR saying the request is too long", op, code, msg)
	}
}

// Stop wakes the loop waiting for datagrams and ends the transfers it ran.
func TestTFTPStopEndsRunningTransfers(t *testing.T) {
	srv, _ := startTFTPServer(t)
	p := newTFTPPeer(t, srv)
	// The longest timeout: nothing but Stop can end the loop's wait.
	p.rrq("big.bin", "timeout", "255")
	if op, _, b := p.packet(); op != tftpOACK {
		t.Fatalf("got opcode %d %q, want an OACK", op, b)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a guard against a hang, not an assertion
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var ev *Event
	for _, e := range srv.Events(nil) {
		if e.Kind == KindTFTP && e.Path == "big.bin" {
			ev = &e
		}
	}
	if ev == nil || !strings.Contains(ev.Reason, errTFTPStopped.Error()) {
		t.Errorf("transfer recorded as %+v, want ended by the stop", ev)
	}
}

// Serving every address, the server answers from the one each request was
// sent to, as clients expect.
func TestTFTPAnswersFromAddressAskedWhenServingAll(t *testing.T) {
	srv := startLoopback(t, func(c *Config) {
		c.ServeAllAddrs = true
		c.TFTPAddr = "0.0.0.0:0"
	})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	asked := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), srv.TFTPAddr().Port())
	if _, err := conn.WriteToUDPAddrPort(rrqPacket("vmlinuz"), asked); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // a guard against a hang, not an assertion
	buf := make([]byte, 2048)
	n, from, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if from != asked || n < 4 || binary.BigEndian.Uint16(buf) != tftpDATA {
		t.Errorf("got %q from %s, want DATA from %s", buf[:n], from, asked)
	}
	conn.WriteToUDPAddrPort([]byte{0, tftpACK, 0, 1}, from)
}

// Transfers side by side through the server's own loop, each lock-step
// from a port of its own, all get their file whole.
func TestTFTPConcurrentTransfersComplete(t *testing.T) {
	srv, big := startTFTPServer(t)
	peers := make([]*tftpPeer, 16)
	for i := range peers {
		peers[i] = newTFTPPeer(t, srv)
	}
	got := make([][]byte, len(peers))
	done := make(chan int)
	for i, p := range peers {
		go func() {
			defer func() { done <- i }()
			got[i] = p.fetch("big.bin")
		}()
	}
	for range peers {
		<-done
	}
	for i := range peers {
		if !bytes.Equal(got[i], big) {
			t.Errorf("peer %d got %d bytes, want the %d bytes of big.bin", i, len(got[i]), len(big))
		}
	}
}

// The server bounds the transfers that run at once: a request beyond the
// bound gets an ERROR packet and is recorded, and one slot freed lets the
// next request in.
func TestTFTPRefusesTransfersBeyondItsBound(t *testing.T) {
	srv, big := startTFTPServer(t)
	ts := newLooplessTFTPServer(t, srv)
	ts.maxTransfers = 2
	ts.now = time.Now()
	peers := []*tftpPeer{newTFTPPeer(t, srv), newTFTPPeer(t, srv), newTFTPPeer(t, srv)}
	for _, p := range peers {
		ts.handle(rrqPacket("big.bin"), p.addr(), netip.Addr{})
	}
	ts.flush()
	for _, p := range peers[:2] {
		if block, _ := p.data(); block != 1 {
			t.Fatalf("a transfer within the bound got block %d, want 1", block)
		}
	}
	if op, code, msg := peers[2].packet(); op != tftpERROR || code != tftpErrUndefined || !bytes.Contains(msg, []byte("server busy: 2 transfers running")) {
		t.Fatalf("the third request got opcode %d code %d %q, want ERROR 0 saying the server is busy", op, code, msg)
	}
	if len(ts.transfers) != 2 {
		t.Fatalf("%d transfers run, want the bound, 2", len(ts.transfers))
	}
	var busy bool
	for _, ev := range srv.events.list("") {
		busy = busy || strings.Contains(ev.Reason, "server busy")
	}
	if !busy {
		t.Error("the refused request left no event")
	}
	// The first transfer ends (its client gives up with an ERROR); the third asks again and runs.
	ts.handle([]byte{0, tftpERROR, 0, 0, 0}, peers[0].addr(), netip.Addr{})
	ts.handle(rrqPacket("big.bin"), peers[2].addr(), netip.Addr{})
	ts.flush()
	if block, b := peers[2].data(); block != 1 || !bytes.Equal(b, big[:512]) {
		t.Errorf("after a slot freed, the request got block %d, want block 1", block)
	}
}
