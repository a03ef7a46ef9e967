package pxe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Server is a running PXE server; Stop releases everything Start took.
type Server struct {
	cfg     *settings
	log     *slog.Logger
	logLim  *limitedHandler
	events  *eventLog
	files   *fileRoot
	dhcp    *dhcpResponder
	baseURL string

	dhcpConn *net.UDPConn
	tftpConn *net.UDPConn
	tftpSock *tftpSocket
	tftp     tftpTransfers
	httpLn   net.Listener
	httpSrv  *http.Server
	ra       *raSender

	done      chan struct{} // closed by Stop to end the server's loops
	crashed   chan struct{} // closed when the CrashAfter test hook fires
	crashOnce sync.Once
	wg        sync.WaitGroup
	stopOnce  sync.Once
	stopErr   error
}

// sockets is what Start opens inside the network namespace.
type sockets struct {
	dhcp *net.UDPConn
	tftp *net.UDPConn
	http net.Listener
	ra   *raSender
}

func (s *sockets) close() {
	if s.dhcp != nil {
		s.dhcp.Close()
	}
	if s.tftp != nil {
		s.tftp.Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	if s.ra != nil {
		s.ra.close()
	}
}

// Start validates cfg, opens every socket (inside cfg.Netns when set) and
// starts serving; ctx bounds only this setup, Stop ends the serving. On
// error nothing stays open.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	st, err := validate(cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start pxe server on %s: %w", st.Interface, err)
	}
	logLim := newLimitedHandler(st.Logger.Handler(), time.Now)
	log := slog.New(logLim).With("component", "pxe", "interface", st.Interface)

	files, err := openPayload(st, log)
	if err != nil {
		return nil, err
	}

	var socks sockets
	err = inNetns(st.Netns, func() error { return openSockets(ctx, st, &socks) })
	if err != nil {
		socks.close()
		files.close()
		where := ""
		if st.Netns != "" {
			where = " in netns " + st.Netns
		}
		var fe *FieldError
		if !errors.As(err, &fe) {
			// Everything openSockets reports names its field; what is
			// left is entering the namespace itself.
			err = invalidConfig(&FieldError{Field: "Netns", Value: st.Netns, Err: err})
		}
		return nil, fmt.Errorf("start pxe server on %s%s: %w", st.Interface, where, err)
	}

	s := &Server{
		cfg:      st,
		log:      log,
		logLim:   logLim,
		events:   newEventLog(log),
		files:    files,
		dhcpConn: socks.dhcp,
		tftpConn: socks.tftp,
		httpLn:   socks.http,
		ra:       socks.ra,
		done:     make(chan struct{}),
		crashed:  make(chan struct{}),
	}
	httpPort := socks.http.Addr().(*net.TCPAddr).Port
	s.baseURL = "http://" + net.JoinHostPort(st.ServerIP.String(), strconv.Itoa(httpPort))
	s.dhcp = &dhcpResponder{
		serverIP:  st.ServerIP,
		subnet:    st.Subnet,
		router:    st.Router,
		dns:       st.DNS,
		leaseTime: st.LeaseTime,
		byMAC:     st.byMAC,
		scriptURL: func(mac string) string { return s.baseURL + scriptPathPrefix + mac },
	}

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveDHCP()
	}()

	s.tftp.m = map[netip.AddrPort]*tftpTransfer{}
	if s.tftpSock, err = newTFTPSocket(s.tftpConn); err != nil {
		s.Stop(ctx)
		return nil, fmt.Errorf("start tftp on %s: %w", st.TFTPAddr, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serveTFTP()
	}()

	s.httpSrv = &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server failed", "err", err)
		}
	}()

	if s.ra != nil {
		s.ra.events = s.events
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			s.ra.readLoop()
		}()
		go func() {
			defer s.wg.Done()
			s.ra.advertiseLoop(s.done)
		}()
	}

	log.Info("pxe server started",
		"serverIP", st.ServerIP, "subnet", st.Subnet, "netns", st.Netns,
		"dhcp", s.DHCPAddr(), "tftp", s.TFTPAddr(), "http", s.HTTPAddr(),
		"serveAllAddrs", st.ServeAllAddrs,
		"routerAdvertisements", st.RouterAdvertisements, "reservations", len(st.Reservations))
	return s, nil
}

// openPayload opens Root and every file the server hands out by name: the
// kernel and initrd must be there, and a chainload file may be absent
// (firmware with iPXE of its own never asks for it) but, when present,
// must be a regular file that opens. Every problem found is reported.
func openPayload(st *settings, log *slog.Logger) (*fileRoot, error) {
	files, err := openFileRoot(st.Root)
	if err != nil {
		return nil, invalidConfig(&FieldError{Field: "Root", Value: st.Root, Err: err})
	}
	var errs []error
	for _, f := range []struct{ field, name string }{{"Boot.Kernel", st.Boot.Kernel}, {"Boot.Initrd", st.Boot.Initrd}} {
		fh, _, err := files.open(f.name)
		if err != nil {
			errs = append(errs, &FieldError{Field: f.field, Value: f.name, Problem: fmt.Sprintf("under Root %q", st.Root), Err: err})
			continue
		}
		fh.Close()
	}
	for _, name := range []string{BIOSLoader, EFILoader} {
		if _, err := os.Lstat(filepath.Join(files.dir, name)); errors.Is(err, fs.ErrNotExist) {
			log.Warn("chainload file missing: firmware without iPXE cannot boot", "file", name, "root", st.Root)
			continue
		}
		fh, _, err := files.open(name)
		if err != nil {
			errs = append(errs, &FieldError{Field: "Root", Value: st.Root, Problem: "chainload file " + name + " is present but cannot be served", Err: err})
			continue
		}
		fh.Close()
	}
	if len(errs) > 0 {
		files.close()
		return nil, invalidConfig(errs...)
	}
	return files, nil
}

// openSockets opens every socket of the server; it runs inside the
// namespace. Every error it returns is ErrInvalidConfig with the field.
func openSockets(ctx context.Context, st *settings, socks *sockets) error {
	fail := func(field, value, problem string, err error) error {
		return invalidConfig(&FieldError{Field: field, Value: value, Problem: problem, Err: err})
	}
	ifi, err := net.InterfaceByName(st.Interface)
	if err != nil {
		return fail("Interface", st.Interface, "look up", err)
	}
	if err := checkServerIP(ifi, st.ServerIP); err != nil {
		return invalidConfig(err)
	}
	if socks.dhcp, err = listenDHCP(ctx, st.Interface, st.DHCPAddr); err != nil {
		return fail("DHCPAddr", st.DHCPAddr, "listen", err)
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", tftpBindAddr(st))
	if err != nil {
		return fail("TFTPAddr", st.TFTPAddr, "listen on "+tftpBindAddr(st), err)
	}
	socks.tftp = pc.(*net.UDPConn)
	if socks.http, err = lc.Listen(ctx, "tcp", st.HTTPAddr); err != nil {
		return fail("HTTPAddr", st.HTTPAddr, "listen", err)
	}
	if st.RouterAdvertisements {
		if socks.ra, err = openRA(ctx, ifi, st.Logger.With("component", "pxe-ra", "interface", st.Interface)); err != nil {
			return fail("RouterAdvertisements", "true", "open the router advertisement socket on "+st.Interface, err)
		}
	}
	return nil
}

// tftpBindAddr is where the TFTP socket binds: TFTPAddr, with an
// unspecified host replaced by ServerIP unless ServeAllAddrs is set, so
// that no datagram to another address ever reaches the server.
func tftpBindAddr(st *settings) string {
	_, port, err := net.SplitHostPort(st.TFTPAddr)
	if err != nil || st.ServeAllAddrs || !listenHost(st.TFTPAddr).IsUnspecified() {
		return st.TFTPAddr
	}
	return net.JoinHostPort(st.ServerIP.String(), port)
}

// checkServerIP makes sure ServerIP is configured on the interface: replies
// from any other address would be dropped by clients, and the reason would
// be hard to see from a failed boot.
func checkServerIP(ifi *net.Interface, ip netip.Addr) error {
	addrs, err := ifi.Addrs()
	if err != nil {
		return &FieldError{Field: "Interface", Value: ifi.Name, Problem: "list addresses", Err: err}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == ip {
				return nil
			}
		}
	}
	return &FieldError{Field: "ServerIP", Value: ip.String(), Problem: fmt.Sprintf("not configured on interface %s (it has %v)", ifi.Name, addrs)}
}

// Stop closes every socket Start opened and waits, until ctx ends, for the
// server's goroutines and in-flight transfers to finish. Calling it again
// returns the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	close(s.done)
	var errs []error
	if s.httpSrv != nil {
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			s.httpSrv.Close()
			errs = append(errs, fmt.Errorf("stop http on %s: %w", s.HTTPAddr(), err))
		}
	} else {
		s.httpLn.Close()
	}
	// Closing the socket ends the TFTP read loop; then the transfers end.
	s.tftpConn.Close()
	s.dhcpConn.Close()
	if s.ra != nil {
		s.ra.close()
	}

	waited := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("stop pxe server on %s: goroutines still running: %w", s.cfg.Interface, ctx.Err()))
	}
	// The read loop is gone: end the transfers it was serving.
	s.stopTFTP()
	if err := s.files.close(); err != nil {
		errs = append(errs, fmt.Errorf("close root %s: %w", s.cfg.Root, err))
	}
	s.events.close()
	s.logLim.flush(context.Background())
	s.log.Info("pxe server stopped")
	return errors.Join(errs...)
}

// Crashed is closed once the Config.CrashAfter test hook has fired; without the hook, never.
func (s *Server) Crashed() <-chan struct{} { return s.crashed }

// crash fires the Config.CrashAfter test hook: every listening socket closes at once, as if
// the process had been killed, so nothing more is answered. Stop still releases the rest.
func (s *Server) crash() {
	s.crashOnce.Do(func() {
		s.log.Error("crashing on purpose: test hook CrashAfter", "after", string(s.cfg.CrashAfter))
		s.httpLn.Close()
		s.tftpConn.Close()
		s.dhcpConn.Close()
		if s.ra != nil {
			s.ra.close()
		}
		close(s.crashed)
	})
}

// Events returns a copy of the events recorded for mac, oldest first, or of
// all events when mac is nil.
func (s *Server) Events(mac net.HardwareAddr) []Event {
	return s.events.list(macKey(mac))
}

// WaitFor returns the first event of mac (any MAC when nil) that match
// accepts (any event when match is nil), already recorded or yet to come. It
// fails when ctx ends or the server stops first.
func (s *Server) WaitFor(ctx context.Context, mac net.HardwareAddr, match func(Event) bool) (Event, error) {
	ev, err := s.events.waitFor(ctx, macKey(mac), match)
	if err != nil {
		who := macKey(mac)
		if who == "" {
			who = "any MAC"
		}
		return Event{}, fmt.Errorf("wait for pxe event of %s: %w", who, err)
	}
	return ev, nil
}

// HTTPAddr returns the address the HTTP server listens on (with the real port when 0 was asked for).
func (s *Server) HTTPAddr() netip.AddrPort {
	return addrPort(s.httpLn.Addr())
}

// TFTPAddr returns the address the TFTP server listens on.
func (s *Server) TFTPAddr() netip.AddrPort {
	return addrPort(s.tftpConn.LocalAddr())
}

// DHCPAddr returns the address the DHCP server listens on.
func (s *Server) DHCPAddr() netip.AddrPort {
	return addrPort(s.dhcpConn.LocalAddr())
}

// BaseURL returns http://<ServerIP>:<http port>, the prefix of every URL the server hands out.
func (s *Server) BaseURL() string {
	return s.baseURL
}

// ScriptURL returns the URL of mac's iPXE script, as DHCP hands it to iPXE.
func (s *Server) ScriptURL(mac net.HardwareAddr) string {
	return s.baseURL + scriptPathPrefix + macKey(mac)
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		return v.AddrPort()
	case *net.UDPAddr:
		return v.AddrPort()
	}
	return netip.AddrPort{}
}

// macForRemote attributes a file request to a reservation by source address.
func (s *Server) macForRemote(ip netip.Addr) string {
	if r, ok := s.cfg.byIP[ip.Unmap()]; ok {
		return macKey(r.MAC)
	}
	return ""
}
