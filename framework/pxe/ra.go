package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Router advertisement timing: the first one goes out as soon as the
// interface has a usable link-local address (retrying every raRetry until
// then), later ones every raInterval, and every solicitation is answered at once.
const (
	raRetry    = 250 * time.Millisecond
	raInterval = 10 * time.Second
)

var (
	allNodes   = net.ParseIP("ff02::1")
	allRouters = net.ParseIP("ff02::2")
)

// solicitation is one router solicitation waiting for its answer.
type solicitation struct {
	mac  string
	from string
}

// raSender sends router advertisements that announce nothing: router
// lifetime 0, no prefix, M=O=0. Their only job is to end iPXE's wait for
// IPv6 configuration.
type raSender struct {
	conn   *ipv6.PacketConn
	ifi    *net.Interface
	msg    []byte
	log    *slog.Logger
	events *eventLog
	// solicits carries router solicitations from readLoop to advertiseLoop,
	// which owns sending.
	solicits chan solicitation
}

// openRA opens a raw ICMPv6 socket on ifi that hears router solicitations
// (by joining ff02::2) and can send advertisements with hop limit 255. It
// runs inside the server's namespace. It needs no address on ifi: the kernel
// picks the link-local source when sending, and sending simply fails (and
// is retried) until one exists.
func openRA(ctx context.Context, ifi *net.Interface, log *slog.Logger) (*raSender, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifi.Name) }); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("bind to device %s: %w", ifi.Name, serr)
		}
		return nil
	}}
	c, err := lc.ListenPacket(ctx, "ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("listen icmpv6: %w", err)
	}
	p := ipv6.NewPacketConn(c)
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeRouterSolicitation)
	steps := []struct {
		what string
		do   func() error
	}{
		{"set icmpv6 filter", func() error { return p.SetICMPFilter(&filter) }},
		{"set hop limit", func() error { return p.SetHopLimit(255) }},
		{"set multicast hop limit", func() error { return p.SetMulticastHopLimit(255) }},
		{"set multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
		{"disable multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"join ff02::2", func() error { return p.JoinGroup(ifi, &net.IPAddr{IP: allRouters}) }},
		{"enable control messages", func() error {
			return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagSrc|ipv6.FlagInterface, true)
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			p.Close()
			return nil, fmt.Errorf("%s on %s: %w", st.what, ifi.Name, err)
		}
	}
	msg, err := raMessage(ifi.HardwareAddr)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &raSender{conn: p, ifi: ifi, msg: msg, log: log, solicits: make(chan solicitation, 16)}, nil
}

// raMessage builds the advertisement: cur hop limit 0 (unspecified), M=O=0,
// router lifetime 0 (not a default router), reachable and retrans timers 0,
// and a source link-layer address option. The kernel fills the checksum.
func raMessage(mac net.HardwareAddr) ([]byte, error) {
	body := make([]byte, 12, 12+8)
	if len(mac) == 6 {
		body = append(body, 1, 1) // option 1: source link-layer address, 8 bytes
		body = append(body, mac...)
	}
	m := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Code: 0, Body: &icmp.RawBody{Data: body}}
	b, err := m.Marshal(nil)
	if err != nil {
		return nil, fmt.Errorf("marshal router advertisement: %w", err)
	}
	return b, nil
}

// parseRS validates a router solicitation (RFC 4861 6.1.1) and returns the
// MAC from its source link-layer address option, if any.
func parseRS(b []byte, hopLimit int, src net.IP) (string, error) {
	if hopLimit != 255 {
		return "", fmt.Errorf("hop limit %d, want 255", hopLimit)
	}
	m, err := icmp.ParseMessage(58, b)
	if err != nil {
		return "", fmt.Errorf("parse icmpv6: %w", err)
	}
	if m.Type != ipv6.ICMPTypeRouterSolicitation || m.Code != 0 {
		return "", fmt.Errorf("icmpv6 type %v code %d is not a router solicitation", m.Type, m.Code)
	}
	raw, ok := m.Body.(*icmp.RawBody)
	if !ok || len(raw.Data) < 4 {
		return "", errors.New("router solicitation too short")
	}
	opts := raw.Data[4:]
	mac := ""
	for len(opts) > 0 {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return "", errors.New("malformed option")
		}
		n := int(opts[1]) * 8
		if opts[0] == 1 && n >= 8 {
			mac = net.HardwareAddr(opts[2:8]).String()
		}
		opts = opts[n:]
	}
	if mac != "" && (src == nil || src.IsUnspecified()) {
		return "", errors.New("source link-layer address option from the unspecified address")
	}
	return mac, nil
}

// readLoop hands every valid router solicitation to advertiseLoop until the socket closes.
func (r *raSender) readLoop() {
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := r.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("read router solicitation", "err", err)
			continue
		}
		hop := -1
		if cm != nil {
			hop = cm.HopLimit
		}
		var srcIP net.IP
		if a, ok := src.(*net.IPAddr); ok {
			srcIP = a.IP
		}
		// Format the source ourselves: net would name the zone after
		// whatever interface has that index in this thread's namespace.
		from := srcIP.String()
		if srcIP.IsLinkLocalUnicast() {
			from += "%" + r.ifi.Name
		}
		mac, err := parseRS(buf[:n], hop, srcIP)
		if err != nil {
			r.log.Debug("drop router solicitation", "from", from, "err", err)
			continue
		}
		r.events.record(Event{Kind: KindRouterSolicitation, Protocol: ProtoNDP, MAC: mac, Remote: from})
		select {
		case r.solicits <- solicitation{mac: mac, from: from}:
		default: // an advertisement is about to go out anyway
		}
	}
}

// advertiseLoop sends the advertisements until done closes.
func (r *raSender) advertiseLoop(done <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var pending []solicitation
	sentOnce, warned := false, false
	for {
		select {
		case <-done:
			return
		case s := <-r.solicits:
			pending = append(pending, s)
		case <-timer.C:
		}
		if err := r.send(); err != nil {
			if !warned {
				r.log.Info("router advertisement not sent yet; retrying until the interface has a usable IPv6 link-local address", "err", err)
				warned = true
			}
			timer.Reset(raRetry)
			continue
		}
		for _, s := range pending {
			r.events.record(Event{Kind: KindRouterAdvertisement, Protocol: ProtoNDP, MAC: s.mac, Remote: allNodes.String(), Detail: "solicited by " + s.from})
		}
		if len(pending) == 0 && !sentOnce {
			r.events.record(Event{Kind: KindRouterAdvertisement, Protocol: ProtoNDP, Remote: allNodes.String(), Detail: "unsolicited"})
		}
		pending, sentOnce, warned = pending[:0], true, false
		timer.Reset(raInterval)
	}
}

// send multicasts one advertisement to all nodes on the interface.
func (r *raSender) send() error {
	cm := &ipv6.ControlMessage{HopLimit: 255, IfIndex: r.ifi.Index}
	if _, err := r.conn.WriteTo(r.msg, cm, &net.IPAddr{IP: allNodes}); err != nil {
		return fmt.Errorf("send router advertisement on %s: %w", r.ifi.Name, err)
	}
	return nil
}

// close releases the socket; readLoop returns once it is closed.
func (r *raSender) close() {
	r.conn.Close()
}
