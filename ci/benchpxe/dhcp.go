package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/lab"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// dhcpResult is what one burst of DHCP clients got.
type dhcpResult struct {
	leases, dups int // leases obtained; addresses handed to more than one client
	secs         float64
	// retransmits counts the clients' requests sent again after no answer came, drops the
	// requests the server's socket dropped because its receive buffer was full.
	retransmits int
	drops       int64
}

// benchDHCP runs n insomniacslk DHCP clients at once, each with its own reserved MAC, over one
// raw socket in the client namespace (n raw sockets would each copy every frame), and returns
// what they got and the seconds until the last client finished.
func benchDHCP(ctx context.Context, bn *benchNet, n int) (r dhcpResult, err error) {
	drops0, err := udpDrops(bn.ours, 67)
	if err != nil {
		return r, err
	}
	defer func() {
		drops, derr := udpDrops(bn.ours, 67)
		r.drops = drops - drops0
		err = errors.Join(err, derr)
	}()
	var raw net.PacketConn
	if err := bn.client.Do(func() error {
		var err error
		raw, err = nclient4.NewRawUDPConn(clientIf, 68)
		return err
	}); err != nil {
		return r, fmt.Errorf("dhcp: open raw socket on %s: %w", clientIf, err)
	}
	// A thousand replies at once overflow a raw socket's default buffer; a lost reply costs
	// its client a three-second timeout, which would be the client's fault, not the server's.
	var pc *packet.Conn
	if b, ok := raw.(*nclient4.BroadcastRawUDPConn); ok {
		pc, _ = b.PacketConn.(*packet.Conn)
	}
	if pc != nil {
		if rc, err := pc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
			})
		}
	}
	mux := newDHCPMux(raw)
	defer mux.close()
	defer func() {
		if pc == nil {
			return
		}
		if st, err := pc.Stats(); err == nil {
			fmt.Printf("benchpxe: dhcp: the clients' raw socket dropped %d of %d frames\n", st.Drops, st.Packets)
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, phaseBound)
	defer cancel()
	got := make([]netip.Addr, n)
	errs := make([]error, n)
	conns := make([]*muxConn, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		mac := reservationMAC(i)
		conns[i] = mux.conn(mac)
		c, err := nclient4.NewWithConn(conns[i], mac, nclient4.WithHWAddr(mac),
			nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(5))
		if err != nil {
			return r, fmt.Errorf("dhcp: client %s: %w", mac, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			lease, err := c.Request(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			got[i], _ = netip.AddrFromSlice(lease.ACK.YourIPAddr.To4())
		}()
	}
	wg.Wait()
	r.secs = time.Since(start).Seconds()
	seen := map[netip.Addr]bool{}
	var firstErr error
	for i, a := range got {
		// A lease takes one DISCOVER and one REQUEST; anything more was sent again.
		r.retransmits += max(0, int(conns[i].sent.Load())-2)
		switch {
		case !a.IsValid():
			if firstErr == nil {
				firstErr = fmt.Errorf("client %s: %w", reservationMAC(i), errs[i])
			}
			continue
		case seen[a]:
			r.dups++
		}
		seen[a] = true
		r.leases++
		if a != reservationIP(i) {
			fmt.Printf("benchpxe: dhcp: client %s leased %s, reserved %s\n", reservationMAC(i), a, reservationIP(i))
		}
	}
	if firstErr != nil {
		fmt.Printf("benchpxe: dhcp: %d clients without a lease, e.g. %v\n", n-r.leases, firstErr)
	}
	return r, ctx.Err()
}

// udpDrops is how many datagrams the UDP sockets on port in ns have dropped since they were
// opened, most for a full receive buffer: the drops column of the namespace's /proc/net/udp.
func udpDrops(ns *lab.Namespace, port uint16) (int64, error) {
	var table []byte
	if err := ns.Do(func() error {
		var err error
		table, err = os.ReadFile("/proc/thread-self/net/udp")
		return err
	}); err != nil {
		return 0, fmt.Errorf("read udp sockets of %s: %w", ns.Name, err)
	}
	var drops int64
	local := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], local) {
			continue
		}
		d, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("udp socket %s in %s: drops %q: %w", f[1], ns.Name, f[len(f)-1], err)
		}
		drops += d
	}
	return drops, nil
}

// dhcpMux shares one raw socket among many clients: one reader hands each reply to the client
// whose MAC is its chaddr.
type dhcpMux struct {
	raw     net.PacketConn
	mu      sync.Mutex
	clients map[string]*muxConn
	done    chan struct{}
}

func newDHCPMux(raw net.PacketConn) *dhcpMux {
	m := &dhcpMux{raw: raw, clients: map[string]*muxConn{}, done: make(chan struct{})}
	go m.read()
	return m
}

func (m *dhcpMux) read() {
	defer close(m.done)
	for {
		b := make([]byte, 1500)
		n, from, err := m.raw.ReadFrom(b)
		if err != nil {
			return
		}
		// op 2 (BOOTREPLY), chaddr at offset 28.
		if n < 34 || b[0] != 2 {
			continue
		}
		m.mu.Lock()
		c := m.clients[net.HardwareAddr(b[28:34]).String()]
		m.mu.Unlock()
		if c == nil {
			continue
		}
		select {
		case c.in <- datagram{b[:n], from}:
		default: // a client that does not read loses the packet, as on a wire
		}
	}
}

func (m *dhcpMux) conn(mac net.HardwareAddr) *muxConn {
	c := &muxConn{mux: m, in: make(chan datagram, 8), closed: make(chan struct{})}
	m.mu.Lock()
	m.clients[mac.String()] = c
	m.mu.Unlock()
	return c
}

func (m *dhcpMux) close() {
	m.raw.Close()
	<-m.done
}

type datagram struct {
	b    []byte
	from net.Addr
}

// muxConn is one client's view of the shared socket.
type muxConn struct {
	mux    *dhcpMux
	in     chan datagram
	once   sync.Once
	closed chan struct{}
	sent   atomic.Int64 // requests sent, retransmissions included
}

func (c *muxConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *muxConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.sent.Add(1)
	return c.mux.raw.WriteTo(b, addr)
}

func (c *muxConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

func (c *muxConn) LocalAddr() net.Addr              { return c.mux.raw.LocalAddr() }
func (c *muxConn) SetDeadline(time.Time) error      { return nil }
func (c *muxConn) SetReadDeadline(time.Time) error  { return nil }
func (c *muxConn) SetWriteDeadline(time.Time) error { return nil }
