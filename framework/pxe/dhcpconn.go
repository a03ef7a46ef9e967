package pxe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// listenDHCP opens the DHCP socket bound to ifname. SO_BINDTODEVICE keeps
// replies (including limited broadcasts to 255.255.255.255) on the PXE
// interface and lets servers on other interfaces share port 67; SO_BROADCAST
// allows the broadcast replies clients without an address need.
func listenDHCP(ctx context.Context, ifname, addr string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				serr = fmt.Errorf("set SO_BROADCAST: %w", serr)
				return
			}
			if serr = unix.BindToDevice(int(fd), ifname); serr != nil {
				serr = fmt.Errorf("bind to device %s: %w", ifname, serr)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// serveDHCP answers DHCP requests one at a time until the socket is closed.
// Handling inline keeps the number of goroutines fixed however fast packets come.
func (s *Server) serveDHCP() {
	buf := make([]byte, 65536)
	for {
		n, peer, err := s.dhcpConn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("read DHCP packet", "err", err)
			continue
		}
		s.handleDHCPPacket(buf[:n], peer)
	}
}

// handleDHCPPacket parses, answers and records one packet. A panic in the
// parsing library is logged and the packet dropped: a malformed packet must
// never take the server down.
func (s *Server) handleDHCPPacket(b []byte, peer net.Addr) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("DHCP packet crashed the handler; dropped", "from", peer, "panic", r)
		}
	}()
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		s.log.Debug("drop malformed DHCP packet", "from", peer, "err", err)
		return
	}
	out := s.dhcp.respond(req)
	remote := peer.String()
	// Record before sending, so whoever sees the reply also finds its event.
	for _, ev := range out.events {
		ev.Remote = remote
		s.events.record(ev)
	}
	if out.reply == nil {
		return
	}
	dst := replyDestination(req, out.reply)
	if _, err := s.dhcpConn.WriteTo(out.reply.ToBytes(), dst); err != nil {
		s.events.record(Event{
			Kind:     KindDHCPSendError,
			MAC:      macKey(req.ClientHWAddr),
			Protocol: ProtoDHCP,
			Remote:   dst.String(),
			Reason:   fmt.Sprintf("send %s to %s: %v", out.reply.MessageType(), dst, err),
		})
		return
	}
	if s.cfg.CrashAfter == CrashAfterDHCPAck && out.reply.MessageType() == dhcpv4.MessageTypeAck {
		s.crash()
	}
}
