package pxe

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// HTTP server bounds. iPXE's requests carry a few hundred bytes of request
// line and headers, so 8 KiB (net/http allows 4 KiB of slack on top) is
// ample, and a longer request gets 431 before any handler or log sees it.
// The header timeout bounds a client that opens a connection and sends
// nothing; there is no whole-request timeout because a slow guest may
// legitimately take minutes to pull an initrd.
const (
	httpMaxHeaderBytes    = 8 << 10
	httpReadHeaderTimeout = 10 * time.Second
	httpIdleTimeout       = 2 * time.Minute
)

// Reasons of HTTP requests the server refuses on purpose.
const (
	// ReasonNotReservedAddress is the Reason of a script request for a
	// reserved MAC that does not come from that MAC's reserved address: it
	// is refused with 403, so it hands out no nonce and cannot change the
	// MAC's last one (LastScriptNonce). Detail names both addresses.
	ReasonNotReservedAddress = "not from the MAC's reserved address"
	// ReasonNotServerIP is the Reason of a script or file request that
	// reached the server on an address other than ServerIP while
	// Config.ServeAllAddrs is off: it is refused with 403. Detail names the address.
	ReasonNotServerIP = "not addressed to ServerIP"
)

// httpHandler routes the server's HTTP endpoints. ServeMux patterns with GET
// also match HEAD and answer every other method with 405, which keeps the
// file tree read-only.
//
//	GET /ipxe/{mac}       per-MAC iPXE script (404 for MACs without a reservation)
//	GET /events[?mac=M]   JSON array of recorded events, all or one MAC's
//	GET /healthz          "ok"
//	GET /{path...}        files under Root
//
// Unless Config.ServeAllAddrs is set, only connections to ServerIP reach
// scripts and files; a connection to any other address the listener covers
// (the pod network, through which the suite reads /events) gets the
// read-only events API and 403 for everything else.
func (s *Server) httpHandler() http.Handler {
	pxe := http.NewServeMux()
	pxe.HandleFunc("GET "+scriptPathPrefix+"{mac}", s.serveScript)
	pxe.HandleFunc("GET /", s.serveFile)
	other := http.NewServeMux()
	other.HandleFunc("GET "+scriptPathPrefix+"{mac}", s.refuseOffServerIP)
	other.HandleFunc("GET /", s.refuseOffServerIP)
	for _, mux := range []*http.ServeMux{pxe, other} {
		mux.HandleFunc("GET /events", s.serveEvents)
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "ok")
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ServeAllAddrs || localOf(r) == s.cfg.ServerIP {
			pxe.ServeHTTP(w, r)
			return
		}
		other.ServeHTTP(w, r)
	})
}

// localOf is the local address a request arrived on, unmapped; invalid
// when the request did not come through a net/http server.
func localOf(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return addrPort(a).Addr().Unmap()
	}
	return netip.Addr{}
}

// refuseOffServerIP answers a script or file request that did not reach
// ServerIP, and records it: a script request under the MAC it names.
func (s *Server) refuseOffServerIP(w http.ResponseWriter, r *http.Request) {
	ev := Event{Kind: KindHTTP, Protocol: ProtoHTTP, Path: r.URL.Path, Remote: r.RemoteAddr,
		Status: http.StatusForbidden, Reason: ReasonNotServerIP, Detail: "addressed to " + localOf(r).String()}
	if raw := r.PathValue("mac"); raw != "" {
		ev.Kind = KindScript
		if hw, err := parseMAC(raw); err == nil {
			ev.MAC = macKey(hw)
		}
	}
	http.Error(w, "scripts and files are served only on the PXE interface's address", ev.Status)
	s.events.record(ev)
}

// countingWriter remembers the status and counts body bytes for the event log.
type countingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.bytes += int64(n)
	return n, err
}

// remoteOf parses r.RemoteAddr, which net/http fills from the connection.
func remoteOf(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// serveScript hands out mac's iPXE script with a fresh nonce.
func (s *Server) serveScript(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ev := Event{Kind: KindScript, Protocol: ProtoHTTP, Path: r.URL.Path, Remote: r.RemoteAddr}
	hw, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		ev.Status = http.StatusBadRequest
		ev.Reason = err.Error()
		http.Error(w, fmt.Sprintf("bad mac in script path: %v", err), ev.Status)
		s.events.record(ev)
		return
	}
	ev.MAC = macKey(hw)
	res, ok := s.cfg.byMAC[ev.MAC]
	if !ok {
		ev.Status = http.StatusNotFound
		ev.Reason = ReasonNotAllowListed
		http.Error(w, fmt.Sprintf("no reservation for mac %s", ev.MAC), ev.Status)
		s.events.record(ev)
		return
	}
	// Only the guest that holds the reservation may take a nonce: a fetch
	// from anywhere else would make the guest's own boot look stale.
	if from := remoteOf(r); from != res.IP {
		ev.Status = http.StatusForbidden
		ev.Reason = ReasonNotReservedAddress
		ev.Detail = fmt.Sprintf("from %s, reserved address %s; boot nonce unchanged", from, res.IP)
		http.Error(w, "a script is served only to its MAC's reserved address", ev.Status)
		s.events.record(ev)
		return
	}
	ev.Nonce = newNonce()
	body := renderScript(s.baseURL, s.cfg.Boot, res, ev.Nonce)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // every fetch must get a new nonce
	cw := &countingWriter{ResponseWriter: w}
	if r.Method != http.MethodHead {
		_, err = cw.Write([]byte(body))
	}
	ev.Status = http.StatusOK
	ev.Bytes = cw.bytes
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Reason = fmt.Sprintf("write script: %v", err)
	}
	s.events.record(ev)
}

// serveEvents answers GET /events?mac=<mac> with that MAC's events, or all
// events without the parameter.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	mac := ""
	if raw, ok := r.URL.Query()["mac"]; ok {
		if len(raw) != 1 {
			http.Error(w, "give the mac parameter once", http.StatusBadRequest)
			return
		}
		hw, err := parseMAC(raw[0])
		if err != nil {
			http.Error(w, fmt.Sprintf("bad mac parameter: %v", err), http.StatusBadRequest)
			return
		}
		mac = macKey(hw)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s.events.list(mac)); err != nil {
		s.log.Warn("write events", "remote", r.RemoteAddr, "err", err)
	}
}

// serveFile serves a file under Root and records the transfer when it ends.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	remote := remoteOf(r)
	ev := Event{Kind: KindHTTP, Protocol: ProtoHTTP, Path: r.URL.Path, Remote: r.RemoteAddr, MAC: s.macForRemote(remote)}
	if r.Method == http.MethodHead {
		ev.Detail = "HEAD"
	}
	cw := &countingWriter{ResponseWriter: w}
	defer func() {
		ev.Status = cw.status
		ev.Bytes = cw.bytes
		ev.Duration = time.Since(start)
		s.events.record(ev)
	}()

	f, fi, err := s.files.open(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		// Refusals look like absent files to the client; the event says which.
		ev.Reason = err.Error()
		http.Error(cw, "404 page not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	http.ServeContent(cw, r, fi.Name(), fi.ModTime(), f)
	switch {
	case cw.status >= 400:
		ev.Reason = fmt.Sprintf("http status %d", cw.status)
	case cw.status == http.StatusOK && r.Method != http.MethodHead && cw.bytes < fi.Size():
		ev.Reason = fmt.Sprintf("client went away after %d of %d bytes", cw.bytes, fi.Size())
	}
}
