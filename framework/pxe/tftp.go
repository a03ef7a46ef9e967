package pxe

// A read-only TFTP server of our own (RFC 1350 with the option extension of
// RFC 2347 and the blksize, timeout and tsize options of RFC 2348 and 2349,
// the ones iPXE and OVMF send). It replaced github.com/pin/tftp/v3 v3.1.0
// (issue 13): under 100 concurrent 10 MiB transfers a CPU profile showed
// that library's single-port receive loop, the one goroutine every packet
// passes through, spending two thirds of its time in net.InterfaceByIndex
// (a netlink dump of every interface for every packet), with each packet
// then handed to its transfer's goroutine; it also took a new request from
// the port of a transfer it still tracked for a packet of that transfer
// and dropped it, and could panic sending on a finished transfer's channel.
// A fork would have changed most of its single-port code. Here the one loop that reads the socket also answers: an ACK is
// followed by the next block from the same goroutine, with no hand-off to
// another goroutine (and so no thread wake-up) per packet, as dnsmasq's
// single loop does; a timer per transfer sends again what was not
// acknowledged. Blocks go in lock step, as the RFC asks.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
)

// TFTP tuning: blocks up to tftpMaxBlockSize when the client asks (iPXE asks
// for 1432 or more); an unanswered packet is sent again every tftpTimeout
// (or the client's timeout option), tftpRetries times, before the transfer
// is given up.
const (
	tftpMaxBlockSize = 8192
	tftpTimeout      = 2 * time.Second
	tftpRetries      = 5
	// tftpReadAhead is how many blocks a transfer reads from its file at once.
	tftpReadAhead = 32
)

// TFTP opcodes (RFC 1350, 2347).
const (
	tftpRRQ   = 1
	tftpWRQ   = 2
	tftpDATA  = 3
	tftpACK   = 4
	tftpERROR = 5
	tftpOACK  = 6
)

// TFTP error codes (RFC 1350, 2347).
const (
	tftpErrUndefined = 0
	tftpErrNotFound  = 1
	tftpErrAccess    = 2
	tftpErrIllegal   = 4
)

// errWriteRefused is what write requests get: the root is read-only.
var errWriteRefused = errors.New("write requests are refused: read-only server")

// Why a transfer ended early, besides the client's own ERROR packet.
var (
	errTFTPSuperseded = errors.New("the client sent a new request from the same port")
	errTFTPStopped    = errors.New("server stopped")
)

// tftpSocket is the one socket TFTP uses for requests and every transfer.
// Bound to one address it reads and writes plainly; bound to the
// unspecified address (Config.ServeAllAddrs) it learns each request's
// destination and answers from it, as clients expect.
type tftpSocket struct {
	conn *net.UDPConn
	pc   *ipv4.PacketConn // nil when bound to one address
}

func newTFTPSocket(conn *net.UDPConn) (*tftpSocket, error) {
	s := &tftpSocket{conn: conn}
	if ap := addrPort(conn.LocalAddr()); ap.Addr().IsUnspecified() {
		s.pc = ipv4.NewPacketConn(conn)
		if err := s.pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
			return nil, fmt.Errorf("ask for destination addresses on %s: %w", ap, err)
		}
	}
	return s, nil
}

// read returns one datagram, its sender and, when bound to the unspecified
// address, the local address it was sent to.
func (s *tftpSocket) read(b []byte) (int, netip.AddrPort, netip.Addr, error) {
	if s.pc == nil {
		n, from, err := s.conn.ReadFromUDPAddrPort(b)
		return n, from, netip.Addr{}, err
	}
	n, cm, from, err := s.pc.ReadFrom(b)
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	var local netip.Addr
	if cm != nil {
		local, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	ua, _ := from.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("datagram from %v", from)
	}
	return n, ua.AddrPort(), local, nil
}

// write sends b to to, from local when it is known.
func (s *tftpSocket) write(b []byte, to netip.AddrPort, local netip.Addr) error {
	if s.pc == nil || !local.IsValid() {
		_, err := s.conn.WriteToUDPAddrPort(b, to)
		return err
	}
	_, err := s.pc.WriteTo(b, &ipv4.ControlMessage{Src: local.AsSlice()}, net.UDPAddrFromAddrPort(to))
	return err
}

// tftpTransfers tracks running transfers by the client's address and port
// (its transfer identifier).
type tftpTransfers struct {
	mu sync.Mutex
	m  map[netip.AddrPort]*tftpTransfer
}

// tftpTransfer is one read transfer. The read loop advances it on each
// ACK, its timer sends again; mu orders the two.
type tftpTransfer struct {
	srv    *Server
	remote netip.AddrPort
	local  netip.Addr
	// request is the read request that started it, to tell a client's
	// retransmitted request from a new one.
	request []byte

	mu       sync.Mutex
	f        *os.File
	blksize  int
	timeout  time.Duration
	block    uint16 // the block pkt carries and the ACK awaited (0: the OACK)
	pkt      []byte // the packet last sent, for retransmission
	final    bool   // pkt is the last DATA
	started  bool   // the client acknowledged the first packet
	sent     int64  // bytes acknowledged
	tries    int
	timer    *time.Timer
	ahead    []byte // read-ahead buffer: ahead[pos:end] is read and not yet acknowledged
	pos      int
	end      int
	eof      bool
	ev       Event
	start    time.Time
	finished bool
}

// serveTFTP reads the TFTP socket until Stop closes it.
func (s *Server) serveTFTP() {
	buf := make([]byte, 65536)
	for {
		n, from, local, err := s.tftpSock.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("tftp read failed", "err", err)
			continue
		}
		s.handleTFTPPacket(buf[:n], from, local)
	}
}

// handleTFTPPacket starts a transfer for a request, advances a transfer on
// its ACK or ends it on its ERROR, and ignores everything else: an unknown
// sender gets no answer it could use to amplify.
func (s *Server) handleTFTPPacket(b []byte, from netip.AddrPort, local netip.Addr) {
	if len(b) < 4 {
		return
	}
	switch op := binary.BigEndian.Uint16(b); op {
	case tftpRRQ, tftpWRQ:
		s.tftpRequest(op, b, from, local)
	case tftpACK, tftpERROR:
		s.tftp.mu.Lock()
		t := s.tftp.m[from]
		s.tftp.mu.Unlock()
		if t == nil {
			return
		}
		var done bool
		if op == tftpACK {
			done = t.ack(binary.BigEndian.Uint16(b[2:]))
		} else {
			done = t.finish(fmt.Errorf("client error %d: %s", binary.BigEndian.Uint16(b[2:]), clip(cString(b[4:]), maxEchoBytes)))
		}
		if done {
			s.forgetTFTP(t)
		}
	}
}

// tftpRequest handles a read or write request from from.
func (s *Server) tftpRequest(op uint16, b []byte, from netip.AddrPort, local netip.Addr) {
	s.tftp.mu.Lock()
	old := s.tftp.m[from]
	if old != nil {
		old.mu.Lock()
		retransmitted := op == tftpRRQ && !old.started && bytes.Equal(old.request, b)
		old.mu.Unlock()
		if retransmitted {
			// The client sent its request again before it saw our first
			// answer; that transfer's timer sends the answer again.
			s.tftp.mu.Unlock()
			return
		}
		delete(s.tftp.m, from)
	}
	s.tftp.mu.Unlock()
	if old != nil {
		// A new request from the port of a running transfer: the client
		// has given that transfer up (or missed its end): serve the new one.
		old.finish(errTFTPSuperseded)
	}
	req, perr := parseTFTPRequest(b[2:])
	if op == tftpWRQ || perr != nil {
		s.tftpRefuse(op, req.name, perr, from, local)
		return
	}
	t := &tftpTransfer{srv: s, remote: from, local: local, request: append([]byte(nil), b...), start: time.Now()}
	t.ev = Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: req.name, Remote: from.String(), MAC: s.macForRemote(from.Addr())}
	f, fi, err := s.files.open(req.name)
	if err != nil {
		t.ev.Reason = err.Error()
		t.ev.Duration = time.Since(t.start)
		s.events.record(t.ev)
		// The error goes back to the client in an ERROR packet: quote
		// only a bounded part of the name it sent.
		code, msg := tftpReadError(req.name, err)
		s.sendTFTPError(code, msg, from, local)
		return
	}
	t.f = f
	s.tftp.mu.Lock()
	s.tftp.m[from] = t
	s.tftp.mu.Unlock()
	t.mu.Lock()
	t.timer = time.AfterFunc(time.Hour, t.expire)
	err = t.begin(fi.Size(), req.options)
	t.mu.Unlock()
	if err != nil && t.finish(err) {
		s.forgetTFTP(t)
	}
}

// forgetTFTP removes a finished transfer, unless a new one has its place.
func (s *Server) forgetTFTP(t *tftpTransfer) {
	s.tftp.mu.Lock()
	if s.tftp.m[t.remote] == t {
		delete(s.tftp.m, t.remote)
	}
	s.tftp.mu.Unlock()
}

// stopTFTP ends every running transfer; Stop calls it after closing the socket.
func (s *Server) stopTFTP() {
	s.tftp.mu.Lock()
	running := make([]*tftpTransfer, 0, len(s.tftp.m))
	for _, t := range s.tftp.m {
		running = append(running, t)
	}
	clear(s.tftp.m)
	s.tftp.mu.Unlock()
	for _, t := range running {
		t.finish(errTFTPStopped)
	}
}

// tftpRefuse answers a write request or a malformed request with an ERROR, and records it.
func (s *Server) tftpRefuse(op uint16, name string, perr error, from netip.AddrPort, local netip.Addr) {
	ev := Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: name, Remote: from.String(), MAC: s.macForRemote(from.Addr())}
	code, msg := uint16(tftpErrAccess), errWriteRefused.Error()
	if op == tftpWRQ {
		ev.Reason, ev.Detail = errWriteRefused.Error(), "write request"
	} else {
		code, msg = tftpErrIllegal, "malformed request: "+perr.Error()
		ev.Reason = msg
	}
	s.events.record(ev)
	s.sendTFTPError(code, msg, from, local)
}

func (s *Server) sendTFTPError(code uint16, msg string, to netip.AddrPort, local netip.Addr) {
	pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tftpERROR), code)
	pkt = append(append(pkt, msg...), 0)
	if err := s.tftpSock.write(pkt, to, local); err != nil {
		s.log.Debug("tftp send error packet failed", "to", to, "err", err)
	}
}

// tftpRequestFields is a parsed read or write request.
type tftpRequestFields struct {
	name string
	// options in the order sent, names lower-cased.
	options [][2]string
}

// parseTFTPRequest parses "name\0mode\0[option\0value\0]..." and accepts
// only octet mode: every file the server hands out is binary.
func parseTFTPRequest(b []byte) (tftpRequestFields, error) {
	var req tftpRequestFields
	if len(b) == 0 || b[len(b)-1] != 0 {
		return req, errors.New("not NUL-terminated")
	}
	fields := strings.Split(string(b[:len(b)-1]), "\x00")
	req.name = fields[0]
	if len(fields) < 2 || len(fields)%2 != 0 {
		return req, errors.New("want a file name, a mode and option pairs")
	}
	if !strings.EqualFold(fields[1], "octet") {
		return req, fmt.Errorf("mode %q: only octet is served", clip(fields[1], maxEchoBytes))
	}
	for i := 2; i+1 < len(fields); i += 2 {
		req.options = append(req.options, [2]string{strings.ToLower(fields[i]), fields[i+1]})
	}
	return req, nil
}

// tftpReadError is what the client of a failed read is told: an error code,
// and the name it sent, bounded, with why in a few words (the event has the
// whole error).
func tftpReadError(name string, err error) (uint16, string) {
	code, why := uint16(tftpErrAccess), "refused"
	switch {
	case errors.Is(err, fs.ErrNotExist):
		code, why = tftpErrNotFound, "file not found"
	case errors.Is(err, errNotRegular):
		why = "not a regular file"
	}
	return code, fmt.Sprintf("read %q: %s", clip(name, maxEchoBytes), why)
}

// begin negotiates the options the client asked for (RFC 2347) and sends
// the OACK, or the first block when there is nothing to acknowledge.
// Called with t.mu held.
func (t *tftpTransfer) begin(size int64, options [][2]string) error {
	t.blksize, t.timeout = 512, tftpTimeout
	var oack []byte
	for _, o := range options {
		name, value := o[0], o[1]
		v, err := strconv.ParseInt(value, 10, 64)
		switch {
		case name == "blksize" && err == nil && v >= 8 && v <= 65464:
			t.blksize = min(int(v), tftpMaxBlockSize)
			value = strconv.Itoa(t.blksize)
		case name == "tsize" && err == nil && v >= 0:
			value = strconv.FormatInt(size, 10)
		case name == "timeout" && err == nil && v >= 1 && v <= 255:
			t.timeout = time.Duration(v) * time.Second
		default:
			continue // unknown or out of range: not acknowledged
		}
		oack = append(append(append(append(oack, name...), 0), value...), 0)
	}
	// The file is read tftpReadAhead blocks at a time: one read per
	// block would cost as many system calls as the sends.
	t.ahead = make([]byte, tftpReadAhead*t.blksize)
	t.pkt = make([]byte, 4, 4+max(t.blksize, len(oack)))
	if oack != nil {
		binary.BigEndian.PutUint16(t.pkt, tftpOACK)
		t.pkt = append(t.pkt, oack...)
		t.block = 0
		t.send()
		return nil
	}
	t.started = true
	return t.next(1)
}

// next puts block into pkt and sends it. Called with t.mu held.
func (t *tftpTransfer) next(block uint16) error {
	if t.end-t.pos < t.blksize && !t.eof {
		// Move the short rest to the front and fill the buffer behind it.
		t.end = copy(t.ahead, t.ahead[t.pos:t.end])
		t.pos = 0
		n, err := t.f.ReadAt(t.ahead[t.end:], t.sent+int64(t.end))
		if err != nil && !errors.Is(err, io.EOF) {
			t.srv.sendTFTPError(tftpErrUndefined, "read error", t.remote, t.local)
			return err
		}
		t.end += n
		t.eof = err != nil || t.end < len(t.ahead)
	}
	t.pkt = t.pkt[:4+t.blksize]
	binary.BigEndian.PutUint16(t.pkt, tftpDATA)
	binary.BigEndian.PutUint16(t.pkt[2:], block)
	n := copy(t.pkt[4:], t.ahead[t.pos:t.end])
	t.pkt = t.pkt[:4+n]
	t.block, t.final = block, n < t.blksize
	t.send()
	return nil
}

// send sends pkt and arms the timer. Called with t.mu held.
func (t *tftpTransfer) send() {
	if err := t.srv.tftpSock.write(t.pkt, t.remote, t.local); err != nil {
		t.srv.log.Debug("tftp send failed", "to", t.remote, "err", err)
	}
	t.timer.Reset(t.timeout)
}

// ack takes the client's acknowledgement of block and sends the next one;
// it reports whether the transfer is over. ACKs of other blocks are
// ignored: answering them would double every packet after a late one (the
// Sorcerer's Apprentice syndrome).
func (t *tftpTransfer) ack(block uint16) bool {
	t.mu.Lock()
	if t.finished || block != t.block {
		t.mu.Unlock()
		return false
	}
	t.tries = 0
	if t.started {
		n := len(t.pkt) - 4
		t.sent += int64(n)
		t.pos += n
	}
	t.started = true
	var err error
	if !t.final {
		err = t.next(block + 1) // wraps to 0 after 65535, as iPXE expects
		if err == nil {
			t.mu.Unlock()
			return false
		}
	}
	t.mu.Unlock()
	return t.finish(err)
}

// expire is the timer: it sends the unacknowledged packet again, or gives
// the transfer up after tftpRetries.
func (t *tftpTransfer) expire() {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	if t.tries < tftpRetries {
		t.tries++
		t.send()
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	if t.finish(fmt.Errorf("no acknowledgement of block %d after %d tries", t.block, tftpRetries+1)) {
		t.srv.forgetTFTP(t)
	}
}

// finish ends the transfer once, records it and reports whether this call
// ended it.
func (t *tftpTransfer) finish(err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return false
	}
	t.finished = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.f.Close()
	t.ev.Bytes = t.sent
	t.ev.Duration = time.Since(t.start)
	if err != nil {
		t.ev.Reason = fmt.Sprintf("transfer %s: %v", t.ev.Path, err)
	}
	t.srv.events.record(t.ev)
	return true
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
