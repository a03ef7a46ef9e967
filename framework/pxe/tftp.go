package pxe

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"time"

	"github.com/pin/tftp/v3"
)

// TFTP tuning: blocks up to tftpMaxBlockSize when the client asks (iPXE asks
// for 1432); a lost peer gives up after about tftpTimeout*tftpRetries, which
// also bounds how long Stop waits for a dead transfer.
const (
	tftpMaxBlockSize = 8192
	tftpTimeout      = 2 * time.Second
	tftpRetries      = 5
	tftpBackoff      = 100 * time.Millisecond
)

// errWriteRefused is what write requests get: the root is read-only.
var errWriteRefused = errors.New("write requests are refused: read-only server")

// newTFTPServer builds the read-only TFTP server. Single-port mode answers
// every transfer from the listening socket: per-transfer sockets would be
// opened by whatever thread runs the transfer, outside Config.Netns.
func (s *Server) newTFTPServer() *tftp.Server {
	srv := tftp.NewServer(s.tftpRead, s.tftpWrite)
	srv.EnableSinglePort()
	srv.SetBlockSize(tftpMaxBlockSize)
	srv.SetTimeout(tftpTimeout)
	srv.SetRetries(tftpRetries)
	// pin/tftp's default backoff sleeps up to 1 s before each retry, also
	// when the socket is already closed, which would stretch Stop by seconds.
	srv.SetBackoff(func(int) time.Duration { return tftpBackoff })
	return srv
}

// serveTFTP runs the TFTP loop until Stop. pin/tftp's single-port loop can
// panic when a late packet races the end of its transfer (it sends on the
// transfer's closed channel); rather than lose the process, log and resume.
func (s *Server) serveTFTP() {
	for {
		panicked := func() (panicked bool) {
			defer func() {
				if r := recover(); r != nil {
					s.log.Error("tftp server panicked; resuming", "panic", r)
					panicked = true
				}
			}()
			if err := s.tftpSrv.Serve(s.tftpConn); err != nil {
				s.log.Error("tftp server failed", "err", err)
			}
			return false
		}()
		if !panicked {
			return
		}
		select {
		case <-s.done:
			return
		default:
		}
	}
}

// tftpRead serves one read request and records it when the transfer ends.
func (s *Server) tftpRead(filename string, rf io.ReaderFrom) error {
	start := time.Now()
	ev := Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: filename}
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		remote := ot.RemoteAddr()
		ev.Remote = remote.String()
		ev.MAC = s.macForRemote(remote.AddrPort().Addr())
	}
	f, fi, err := s.files.open(filename)
	if err != nil {
		ev.Reason = err.Error()
		ev.Duration = time.Since(start)
		s.events.record(ev)
		// The error goes back to the client in an ERROR packet: quote
		// only a bounded part of the name it sent.
		return tftpReadError(filename, err)
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(fi.Size()) // answers the tsize option (RFC 2349)
	}
	n, err := rf.ReadFrom(f)
	ev.Bytes = n
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Reason = fmt.Sprintf("transfer %s: %v", filename, err)
	}
	s.events.record(ev)
	return err
}

// tftpReadError is what the client of a failed read is told: the name it
// sent, bounded, and why in a few words (the event has the whole error).
func tftpReadError(name string, err error) error {
	why := "refused"
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "file not found"
	case errors.Is(err, errNotRegular):
		why = "not a regular file"
	}
	return fmt.Errorf("read %q: %s", clip(name, maxEchoBytes), why)
}

// tftpWrite refuses every write request, and records it.
func (s *Server) tftpWrite(filename string, wt io.WriterTo) error {
	ev := Event{Kind: KindTFTP, Protocol: ProtoTFTP, Path: filename, Reason: errWriteRefused.Error(), Detail: "write request"}
	if it, ok := wt.(interface{ RemoteAddr() net.UDPAddr }); ok {
		remote := it.RemoteAddr()
		ev.Remote = remote.String()
		ev.MAC = s.macForRemote(remote.AddrPort().Addr())
	}
	s.events.record(ev)
	return errWriteRefused
}
