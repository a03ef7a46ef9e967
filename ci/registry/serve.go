package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

type serveConfig struct {
	network, dir, files, ready, accessLog string
}

// serve runs the registry until ctx ends. It listens on 127.0.0.1 at a free port, where this
// host's Docker pulls (Docker treats 127.0.0.0/8 registries as insecure, so plain HTTP is
// accepted), and on the gateway of the Docker network at the same port, where the kind nodes'
// containerd reaches it (cluster.WithRegistryEndpoint sends their pulls there).
func serve(ctx context.Context, c serveConfig) error {
	if err := required([2]string{"dir", c.dir}, [2]string{"files", c.files}, [2]string{"ready", c.ready}, [2]string{"access-log", c.accessLog}); err != nil {
		return err
	}
	for _, d := range []string{c.dir, c.files} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	logFile, err := os.OpenFile(c.accessLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	access := &accessLog{w: logFile}

	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New(registry.WithBlobHandler(registry.NewDiskBlobHandler(c.dir)),
		registry.Logger(log.New(io.Discard, "", 0))))
	mux.Handle("/files/", http.StripPrefix("/files/", http.FileServer(http.Dir(c.files))))
	handler := access.wrap(mux)

	loopback, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen on loopback: %w", err)
	}
	listeners := []net.Listener{loopback}
	port := loopback.Addr().(*net.TCPAddr).Port
	addrs := []string{loopback.Addr().String()}
	if c.network != "" {
		gw, err := gateway(ctx, c.network)
		if err != nil {
			loopback.Close()
			return err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(gw, strconv.Itoa(port)))
		if err != nil {
			loopback.Close()
			return fmt.Errorf("listen on network %s's gateway: %w", c.network, err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr().String())
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second}
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() { errs <- srv.Serve(l) }()
	}
	if err := os.WriteFile(c.ready, []byte(strings.Join(addrs, " ")+"\n"), 0o644); err != nil {
		srv.Close()
		return err
	}
	fmt.Printf("registry: serving on %s, blobs in %s, /files/ from %s, requests logged to %s\n", strings.Join(addrs, " and "), c.dir, c.files, c.accessLog)
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errs:
		srv.Close()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// gateway returns the IPv4 gateway of a Docker network: this host's address on it.
func gateway(ctx context.Context, network string) (string, error) {
	out, err := command.Output(ctx, exec.CommandContext(ctx, "docker", "network", "inspect", "--format",
		"{{range .IPAM.Config}}{{.Gateway}} {{end}}", network))
	if err != nil {
		return "", fmt.Errorf("gateway of Docker network %s: %w", network, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if ip := net.ParseIP(f); ip != nil && ip.To4() != nil {
			return f, nil
		}
	}
	return "", fmt.Errorf("gateway of Docker network %s: no IPv4 gateway in %q", network, strings.TrimSpace(string(out)))
}

// accessLog writes one line per request: time, client address, method, path, status, bytes,
// and the client's User-Agent, query-escaped so that it stays one field.
// verify reads it back (parseAccess).
type accessLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (a *accessLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a.mu.Lock()
		defer a.mu.Unlock()
		ua := url.QueryEscape(r.UserAgent())
		if ua == "" {
			ua = "-"
		}
		fmt.Fprintf(a.w, "%s %s %s %s %d %d %s\n", time.Now().UTC().Format(time.RFC3339), host, r.Method, r.URL.Path, rec.status, rec.bytes, ua)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// access is one line of the access log.
type access struct {
	client, method, path string
	status               int
	agent                string // the User-Agent, "" in a log written before it was kept
}

// parseAccess reads the access log's lines.
func parseAccess(text string) ([]access, error) {
	var out []access
	for i, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 && len(f) != 7 {
			return nil, fmt.Errorf("access log line %d: %q: want 7 fields", i+1, line)
		}
		agent := ""
		if len(f) == 7 && f[6] != "-" {
			agent, _ = url.QueryUnescape(f[6])
		}
		status, err := strconv.Atoi(f[4])
		if err != nil {
			return nil, fmt.Errorf("access log line %d: status %q: %w", i+1, f[4], err)
		}
		out = append(out, access{client: f[1], method: f[2], path: f[3], status: status, agent: agent})
	}
	return out, nil
}
