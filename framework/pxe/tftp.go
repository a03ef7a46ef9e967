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
// A fork would have changed most of its single-port code.
//
// One goroutine owns the socket and every transfer, as dnsmasq's single
// loop does: no locks, no hand-off to another goroutine (and so no thread
// wake-up) per packet, no timer per transfer. Each turn of the loop reads
// the datagrams waiting (recvmmsg, up to one per transfer: in lock step a
// transfer has one ACK outstanding), answers each ACK with the next block,
// sends what is due again, and writes all the answers at once (sendmmsg).
// Writing a turn's answers together also wakes each client's receiver once
// for many packets. A DATA packet is its header and a slice of the file,
// mapped into memory, sent as two pieces: the kernel copies the file's
// bytes once, from the page cache into the packet. Blocks go in lock step,
// as the RFC asks.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TFTP tuning: blocks up to tftpMaxBlockSize when the client asks (iPXE asks
// for 1432 or more); an unanswered packet is sent again every tftpTimeout
// (or the client's timeout option), tftpRetries times, before the transfer
// is given up.
const (
	tftpMaxBlockSize = 8192
	tftpTimeout      = 2 * time.Second
	tftpRetries      = 5
	// tftpBatch is the most datagrams one turn of the loop reads at once.
	tftpBatch = 64
	// tftpMaxRequest is the longest datagram read whole: RFC 2347 limits a
	// request to 512 bytes; a longer one is refused, not cut short.
	tftpMaxRequest = 2048
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

// maxTFTPTransfers bounds the transfers that run at once, each holding a
// file mapping and a slot in the loop: a rack of machines chainloading at
// once fits (dnsmasq's default is 50), a client opening transfers from
// port after port does not make the server grow. Requests beyond it get an
// ERROR packet, which iPXE reports and retries.
const maxTFTPTransfers = 512

// errWriteRefused is what write requests get: the root is read-only.
var errWriteRefused = errors.New("write requests are refused: read-only server")

// Why a transfer ended early, besides the client's own ERROR packet.
var (
	errTFTPSuperseded = errors.New("the client sent a new request from the same port")
	errTFTPStopped    = errors.New("server stopped")
	errTFTPTooLong    = fmt.Errorf("longer than %d bytes", tftpMaxRequest)
)

// tftpServer is the TFTP side of a Server. Its loop is the only goroutine
// that touches it.
type tftpServer struct {
	srv  *Server
	sock *tftpSocket
	// transfers are the running ones by the client's address and port (its
	// transfer identifier).
	transfers map[netip.AddrPort]*tftpTransfer
	out       []tftpDatagram // the answers of this turn, written together by flush
	queued    []*tftpTransfer
	unmap     [][]byte // files of ended transfers, unmapped after flush
	// now is when this turn's datagrams were read; sends are timed from it.
	now time.Time
	// due is the earliest time a transfer may need sending again (zero
	// when none runs): the loop's wait for datagrams ends then.
	due time.Time
	// maxTransfers bounds len(transfers) (maxTFTPTransfers; tests lower it).
	maxTransfers int
}

func newTFTPServer(srv *Server, sock *tftpSocket) *tftpServer {
	return &tftpServer{srv: srv, sock: sock, transfers: map[netip.AddrPort]*tftpTransfer{}, maxTransfers: maxTFTPTransfers}
}

// tftpTransfer is one read transfer.
type tftpTransfer struct {
	remote netip.AddrPort
	local  netip.Addr
	to     unix.RawSockaddrInet4 // remote, as the kernel takes it
	dgram  tftpDatagram          // the packet in flight: the OACK, or hdr and its data
	// request is the read request that started it, to tell a client's
	// retransmitted request from a new one.
	request []byte

	// file is the file's content, mapped (see mapTFTPFile).
	file    []byte
	blksize int
	timeout time.Duration
	block   uint16  // the block in flight and the ACK awaited (0: the OACK)
	hdr     [4]byte // the DATA header
	final   bool    // dgram is the last DATA
	started bool    // the client acknowledged the first packet
	sent    int     // bytes acknowledged
	tries   int
	due     time.Time // when dgram is sent again unless acknowledged
	queued  bool      // dgram is in the batch flush writes next
	ev      Event
	start   time.Time
}

// serve reads the TFTP socket until Stop shuts it, then ends the
// transfers and closes it.
func (ts *tftpServer) serve() {
	defer ts.sock.close()
	defer ts.stopAll()
	for {
		if err := ts.sock.waitUntil(time.Now(), ts.due); err != nil {
			ts.srv.log.Error("tftp stopped", "err", err)
			return
		}
		// In lock step each transfer has at most one ACK on its way, so a
		// bigger batch only costs setting up the slots it leaves empty.
		n, err := ts.sock.receive(len(ts.transfers) + 8)
		ts.now = time.Now()
		switch {
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, errTFTPWaitOver):
		case err != nil:
			ts.srv.log.Debug("tftp receive failed", "err", err)
		}
		for i := range n {
			b, from, local, truncated := ts.sock.datagram(i)
			switch {
			case !from.IsValid():
			case truncated:
				ts.refuseTruncated(b, from, local)
			default:
				ts.handle(b, from, local)
			}
		}
		if !ts.due.IsZero() && !ts.now.Before(ts.due) {
			ts.resend()
		}
		ts.flush()
	}
}

// handle starts a transfer for a request, advances a transfer on its ACK or
// ends it on its ERROR, and ignores everything else: an unknown sender gets
// no answer it could use to amplify. Answers go into the batch flush writes.
func (ts *tftpServer) handle(b []byte, from netip.AddrPort, local netip.Addr) {
	if len(b) < 4 {
		return
	}
	switch op := binary.BigEndian.Uint16(b); op {
	case tftpRRQ, tftpWRQ:
		ts.request(op, b, from, local)
	case tftpACK, tftpERROR:
		t := ts.transfers[from]
		if t == nil {
			return
		}
		if op == tftpERROR {
			ts.finish(t, fmt.Errorf("client error %d: %s", binary.BigEndian.Uint16(b[2:]), echo(cString(b[4:]))))
			return
		}
		ts.ack(t, binary.BigEndian.Uint16(b[2:]))
	}
}

// refuseTruncated answers a request longer than the read buffer, which
// cannot be parsed, with an ERROR; anything else that long is no TFTP packet
// this server awaits.
func (ts *tftpServer) refuseTruncated(b []byte, from netip.AddrPort, local netip.Addr) {
	if op := binary.BigEndian.Uint16(b); op == tftpRRQ || op == tftpWRQ {
		ts.refuse(op, cString(b[2:]), errTFTPTooLong, from, local)
	}
}

// request handles a read or write request from from.
func (ts *tftpServer) request(op uint16, b []byte, from netip.AddrPort, local netip.Addr) {
	s := ts.srv
	if old := ts.transfers[from]; old != nil {
		if op == tftpRRQ && !old.started && bytes.Equal(old.request, b) {
			// The client sent its request again before it saw our first
			// answer; resend sends the answer again when it is due.
			return
		}
		// A new request from the port of a running transfer: the client
		// has given that transfer up (or missed its end): serve the new one.
		ts.finish(old, errTFTPSuperseded)
	}
	req, perr := parseTFTPRequest(b[2:])
	if op == tftpWRQ || perr != nil {
		ts.refuse(op, req.name, perr, from, local)
		return
	}
	if len(ts.transfers) >= ts.maxTransfers {
		msg := fmt.Sprintf("server busy: %d transfers running, try again", ts.maxTransfers)
		s.events.record(Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: req.name, Remote: from.String(),
			MAC: s.macForRemote(from.Addr()), Reason: msg})
		ts.sendError(tftpErrUndefined, msg, from, local)
		return
	}
	t := &tftpTransfer{remote: from, local: local, to: sockaddr4(from), request: append([]byte(nil), b...), start: ts.now}
	t.dgram = tftpDatagram{to: &t.to, oob: ts.sock.sourceOOB(local)}
	t.ev = Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: req.name, Remote: from.String(), MAC: s.macForRemote(from.Addr())}
	file, err := s.mapTFTPFile(req.name)
	if err != nil {
		t.ev.Reason = err.Error()
		t.ev.Duration = time.Since(t.start)
		s.events.record(t.ev)
		// The error goes back to the client in an ERROR packet: quote
		// only a bounded part of the name it sent.
		code, msg := tftpReadError(req.name, err)
		ts.sendError(code, msg, from, local)
		return
	}
	t.file = file
	ts.transfers[from] = t
	ts.begin(t, req.options)
}

// mapTFTPFile maps the file name under the root for reading. Transfers hand
// slices of it to the kernel to send and never read it themselves: the
// file is copied once, straight into the packets, instead of into a buffer
// first, and a file that shrinks meanwhile makes a send fail (EFAULT)
// where a read of the mapping would crash the server (SIGBUS). An empty
// file maps to nil.
func (s *Server) mapTFTPFile(name string) ([]byte, error) {
	f, fi, err := s.files.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping keeps what it needs
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("map %q: %d bytes is too large", name, size)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map %q: %w", name, err)
	}
	return b, nil
}

// resend sends again every packet not acknowledged in time, gives up the
// transfers that were sent theirs tftpRetries times, and finds the next due
// time.
func (ts *tftpServer) resend() {
	ts.due = time.Time{}
	for _, t := range ts.transfers {
		if ts.now.Before(t.due) {
			ts.setDue(t.due)
			continue
		}
		if t.tries == tftpRetries {
			ts.finish(t, fmt.Errorf("no acknowledgement of block %d after %d tries", t.block, tftpRetries+1))
			continue
		}
		t.tries++
		ts.send(t)
	}
}

// setDue moves the loop's next wake-up to at, if that is sooner.
func (ts *tftpServer) setDue(at time.Time) {
	if ts.due.IsZero() || at.Before(ts.due) {
		ts.due = at
	}
}

// stopAll ends every running transfer; the loop calls it when the socket is shut.
func (ts *tftpServer) stopAll() {
	for _, t := range ts.transfers {
		ts.finish(t, errTFTPStopped)
	}
	ts.flush()
}

// refuse answers a write request or a malformed request with an ERROR, and records it.
func (ts *tftpServer) refuse(op uint16, name string, perr error, from netip.AddrPort, local netip.Addr) {
	ev := Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: name, Remote: from.String(), MAC: ts.srv.macForRemote(from.Addr())}
	code, msg := uint16(tftpErrAccess), errWriteRefused.Error()
	if op == tftpWRQ {
		ev.Reason, ev.Detail = errWriteRefused.Error(), "write request"
	} else {
		code, msg = tftpErrIllegal, "malformed request: "+perr.Error()
		ev.Reason = msg
	}
	ts.srv.events.record(ev)
	ts.sendError(code, msg, from, local)
}

// sendError sends an ERROR packet at once: errors are rare, and end what they answer.
func (ts *tftpServer) sendError(code uint16, msg string, to netip.AddrPort, local netip.Addr) {
	pkt := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, tftpERROR), code)
	pkt = append(append(pkt, msg...), 0)
	if err := ts.sock.write(pkt, to, local); err != nil {
		ts.srv.log.Debug("tftp send error packet failed", "to", to, "err", err)
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
		return req, fmt.Errorf("mode %s: only octet is served", echo(fields[1]))
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
	return code, fmt.Sprintf("read %s: %s", echo(name), why)
}

// begin negotiates the options the client asked for (RFC 2347) and sends
// the OACK, or the first block when there is nothing to acknowledge.
func (ts *tftpServer) begin(t *tftpTransfer, options [][2]string) {
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
			value = strconv.Itoa(len(t.file))
		case name == "timeout" && err == nil && v >= 1 && v <= 255:
			t.timeout = time.Duration(v) * time.Second
		default:
			continue // unknown or out of range: not acknowledged
		}
		oack = append(append(append(append(oack, name...), 0), value...), 0)
	}
	binary.BigEndian.PutUint16(t.hdr[:], tftpDATA)
	if oack != nil {
		t.dgram.bufs = [][]byte{append([]byte{0, tftpOACK}, oack...)}
		t.block = 0
		ts.send(t)
		return
	}
	t.started = true
	ts.next(t, 1)
}

// next makes block the packet in flight and sends it.
func (ts *tftpServer) next(t *tftpTransfer, block uint16) {
	binary.BigEndian.PutUint16(t.hdr[2:], block)
	data := t.file[t.sent:min(len(t.file), t.sent+t.blksize)]
	t.dgram.bufs = append(t.dgram.bufs[:0], t.hdr[:], data)
	t.block, t.final = block, len(data) < t.blksize
	ts.send(t)
}

// send queues the packet in flight for flush and times its retransmission.
func (ts *tftpServer) send(t *tftpTransfer) {
	if !t.queued {
		t.queued = true
		ts.out = append(ts.out, t.dgram)
		ts.queued = append(ts.queued, t)
	}
	t.due = ts.now.Add(t.timeout)
	ts.setDue(t.due)
}

// flush writes the answers queued in this turn, as many per system call as
// the kernel takes.
func (ts *tftpServer) flush() {
	ts.sock.send(ts.out, func(d tftpDatagram, err error) {
		// Its client's address may have become unreachable; a
		// retransmission may still go.
		ts.srv.log.Debug("tftp send failed", "err", err)
	})
	for i, t := range ts.queued {
		t.queued = false
		ts.queued[i] = nil
	}
	clear(ts.out)
	ts.out, ts.queued = ts.out[:0], ts.queued[:0]
	// Only now may the files of the transfers that ended go: a packet of
	// theirs may have been in the batch.
	for i, file := range ts.unmap {
		if err := unix.Munmap(file); err != nil {
			ts.srv.log.Error("tftp unmap failed", "err", err)
		}
		ts.unmap[i] = nil
	}
	ts.unmap = ts.unmap[:0]
}

// ack takes the client's acknowledgement of block and sends the next one.
// ACKs of other blocks are ignored: answering them would double every
// packet after a late one (the Sorcerer's Apprentice syndrome).
func (ts *tftpServer) ack(t *tftpTransfer, block uint16) {
	if block != t.block {
		return
	}
	if t.queued {
		// A client that acknowledges a block before it can have seen it
		// (sent in this very turn) still gets it: write the batch before
		// the block's header changes.
		ts.flush()
	}
	t.tries = 0
	if t.started {
		t.sent += len(t.dgram.bufs[1])
	}
	t.started = true
	if t.final {
		ts.finish(t, nil)
		return
	}
	ts.next(t, block+1) // wraps to 0 after 65535, as iPXE expects
}

// finish ends the transfer and records it.
func (ts *tftpServer) finish(t *tftpTransfer, err error) {
	if ts.transfers[t.remote] == t {
		delete(ts.transfers, t.remote)
	}
	if t.file != nil {
		ts.unmap = append(ts.unmap, t.file)
		t.file = nil
	}
	t.ev.Bytes = int64(t.sent)
	t.ev.Duration = time.Since(t.start)
	if err != nil {
		t.ev.Reason = fmt.Sprintf("transfer %s: %v", t.ev.Path, err)
	}
	ts.srv.events.record(t.ev)
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
