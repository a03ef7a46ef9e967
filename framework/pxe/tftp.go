package pxe

// A read-only TFTP server of our own (RFC 1350 with the option extension of
// RFC 2347 and the blksize, timeout and tsize options of RFC 2348 and 2349,
// the ones iPXE and OVMF send). It replaced github.com/pin/tftp/v3 v3.1.0
// (issue 13): under 100 concurrent 10 MiB transfers a CPU profile showed
// that library's single-port receive loop, the one goroutine every packet
// passes through, spending two thirds of its time in net.InterfaceByIndex
// (a netlink dump of every interface for every packet), and the rest of the
// work behind a one-slot channel per transfer; it also took a new request
// from the port of a transfer it still tracked for a packet of that
// transfer and dropped it, and could panic sending on a finished transfer's
// channel. Here one loop reads the socket and hands each packet to its
// transfer without allocating; a transfer is a goroutine that reads its
// file and sends, in lock step as the RFC asks, from the same socket.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	tftpErrUndefined   = 0
	tftpErrNotFound    = 1
	tftpErrAccess      = 2
	tftpErrIllegal     = 4
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
// (its transfer identifier): the read loop hands each ACK or ERROR to its one.
type tftpTransfers struct {
	mu sync.Mutex
	m  map[netip.AddrPort]*tftpTransfer
}

// tftpTransfer is one read transfer; its goroutine alone sends.
type tftpTransfer struct {
	remote netip.AddrPort
	local  netip.Addr
	// request is the read request that started it, to tell a client's
	// retransmitted request from a new one.
	request []byte
	// in carries the client's ACKs and ERRORs; when full, a packet is
	// dropped as on a congested wire and the retransmission covers it.
	in chan tftpReply
	// started is set once the client acknowledged the first packet.
	started atomic.Bool
	// superseded is closed when the client sends a new request from the
	// same port: it has given this transfer up.
	superseded chan struct{}
	once       sync.Once
}

// tftpReply is an ACK (block) or an ERROR (code and message) from the client.
type tftpReply struct {
	op    uint16
	block uint16
	code  uint16
	msg   string
}

func (t *tftpTransfer) supersede() { t.once.Do(func() { close(t.superseded) }) }

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

// handleTFTPPacket starts a transfer for a request, hands an ACK or ERROR
// to its transfer and ignores everything else: an unknown sender gets no
// answer it could use to amplify.
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
		r := tftpReply{op: op, block: binary.BigEndian.Uint16(b[2:])}
		if op == tftpERROR {
			r.code, r.block = r.block, 0
			r.msg = clip(cString(b[4:]), maxEchoBytes)
		}
		select {
		case t.in <- r:
		default:
		}
	}
}

// tftpRequest handles a read or write request from from.
func (s *Server) tftpRequest(op uint16, b []byte, from netip.AddrPort, local netip.Addr) {
	s.tftp.mu.Lock()
	if old := s.tftp.m[from]; old != nil {
		if op == tftpRRQ && !old.started.Load() && bytes.Equal(old.request, b) {
			// The client sent its request again before it saw our first
			// answer; that transfer resends it.
			s.tftp.mu.Unlock()
			return
		}
		// A new request from the port of a running transfer: the client has
		// given that transfer up (or missed its end), so serve the new one.
		old.supersede()
		delete(s.tftp.m, from)
	}
	req, perr := parseTFTPRequest(b[2:])
	if op == tftpWRQ || perr != nil {
		s.tftp.mu.Unlock()
		s.tftpRefuse(op, req.name, perr, from, local)
		return
	}
	t := &tftpTransfer{
		remote:     from,
		local:      local,
		request:    append([]byte(nil), b...),
		in:         make(chan tftpReply, 8),
		superseded: make(chan struct{}),
	}
	s.tftp.m[from] = t
	s.wg.Add(1)
	s.tftp.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.tftpRead(t, req)
		s.tftp.mu.Lock()
		if s.tftp.m[from] == t {
			delete(s.tftp.m, from)
		}
		s.tftp.mu.Unlock()
	}()
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

// tftpRead serves one read request and records it when the transfer ends.
func (s *Server) tftpRead(t *tftpTransfer, req tftpRequestFields) {
	start := time.Now()
	ev := Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: req.name, Remote: t.remote.String(), MAC: s.macForRemote(t.remote.Addr())}
	f, fi, err := s.files.open(req.name)
	if err != nil {
		ev.Reason = err.Error()
		ev.Duration = time.Since(start)
		s.events.record(ev)
		// The error goes back to the client in an ERROR packet: quote
		// only a bounded part of the name it sent.
		code, msg := tftpReadError(req.name, err)
		s.sendTFTPError(code, msg, t.remote, t.local)
		return
	}
	defer f.Close()
	n, err := s.tftpSend(t, f, fi.Size(), req.options)
	ev.Bytes = n
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Reason = fmt.Sprintf("transfer %s: %v", req.name, err)
	}
	s.events.record(ev)
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

// tftpSend negotiates the options the client asked for and sends the file
// of the given size block by block, each acknowledged before the next. It
// returns the bytes the client acknowledged.
func (s *Server) tftpSend(t *tftpTransfer, f io.ReaderAt, size int64, options [][2]string) (int64, error) {
	blksize, timeout := 512, tftpTimeout
	var oack []byte
	for _, o := range options {
		name, value := o[0], o[1]
		v, err := strconv.ParseInt(value, 10, 64)
		switch {
		case name == "blksize" && err == nil && v >= 8 && v <= 65464:
			blksize = min(int(v), tftpMaxBlockSize)
			value = strconv.Itoa(blksize)
		case name == "tsize" && err == nil && v >= 0:
			value = strconv.FormatInt(size, 10)
		case name == "timeout" && err == nil && v >= 1 && v <= 255:
			timeout = time.Duration(v) * time.Second
		default:
			continue // unknown or out of range: not acknowledged (RFC 2347)
		}
		oack = append(append(append(append(oack, name...), 0), value...), 0)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	if oack != nil {
		pkt := append(binary.BigEndian.AppendUint16(nil, tftpOACK), oack...)
		if err := s.tftpExchange(t, timer, timeout, pkt, 0); err != nil {
			return 0, err
		}
	}
	pkt := make([]byte, 4+blksize)
	binary.BigEndian.PutUint16(pkt, tftpDATA)
	var sent int64
	for block := uint16(1); ; block++ { // wraps to 0 after 65535, as iPXE expects
		n, err := f.ReadAt(pkt[4:], sent)
		if err != nil && !errors.Is(err, io.EOF) {
			s.sendTFTPError(tftpErrUndefined, "read error", t.remote, t.local)
			return sent, err
		}
		binary.BigEndian.PutUint16(pkt[2:], block)
		if err := s.tftpExchange(t, timer, timeout, pkt[:4+n], block); err != nil {
			return sent, err
		}
		sent += int64(n)
		if n < blksize {
			return sent, nil
		}
	}
}

// tftpExchange sends pkt until the client acknowledges block, tftpRetries
// times at most, and fails on the client's ERROR, a new request from its
// port or Stop. Stray ACKs of other blocks are ignored: answering them
// would double every packet after a late one (the Sorcerer's Apprentice).
func (s *Server) tftpExchange(t *tftpTransfer, timer *time.Timer, timeout time.Duration, pkt []byte, block uint16) error {
	check := func(r tftpReply) (done bool, err error) {
		if r.op == tftpERROR {
			return true, fmt.Errorf("client error %d: %s", r.code, r.msg)
		}
		return r.block == block, nil
	}
	for try := 0; try <= tftpRetries; try++ {
		if err := s.tftpSock.write(pkt, t.remote, t.local); err != nil && errors.Is(err, net.ErrClosed) {
			return errTFTPStopped
		}
		timer.Reset(timeout)
	wait:
		for {
			select {
			case r := <-t.in:
				if done, err := check(r); done {
					t.started.Store(true)
					return err
				}
			case <-timer.C:
				break wait
			case <-t.superseded:
				// The answer may have come just before the new request.
				for {
					select {
					case r := <-t.in:
						if done, err := check(r); done {
							return err
						}
					default:
						return errTFTPSuperseded
					}
				}
			case <-s.done:
				return errTFTPStopped
			}
		}
	}
	return fmt.Errorf("no acknowledgement of block %d after %d tries", block, tftpRetries+1)
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
