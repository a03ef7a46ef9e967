package guestssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testTimeout bounds waits that must end on their own, so that a bug
// fails the test with a message instead of hanging it.
const testTimeout = time.Minute

// noExitStatus makes a handler's session end without an exit-status.
const noExitStatus = -1

// handler runs one exec request; ctx ends when the client closes the
// session. It returns the exit status, or noExitStatus.
type handler func(ctx context.Context, cmd string, stdout, stderr io.Writer) int

// shHandler runs cmd with sh -c on this machine, as sshd would.
func shHandler(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stdout, c.Stderr = stdout, stderr
	if err := c.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() >= 0 {
			return exit.ExitCode()
		}
		fmt.Fprintln(stderr, err)
		return 255
	}
	return 0
}

// testServer is a minimal sshd on loopback: public key auth for one key,
// exec requests only.
type testServer struct {
	addr        string
	hostKey     ssh.Signer
	fingerprint string
	handler     handler
	started     chan string   // commands as they start
	finished    chan struct{} // one per command whose handler returned
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startServer(t *testing.T, authorized ssh.PublicKey, h handler) *testServer {
	t.Helper()
	s := &testServer{hostKey: newSigner(t), handler: h, started: make(chan string, 16), finished: make(chan struct{}, 16)}
	s.fingerprint = ssh.FingerprintSHA256(s.hostKey.PublicKey())
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == "root" && bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("key %s of %s not authorized", ssh.FingerprintSHA256(key), meta.User())
		},
	}
	cfg.AddHostKey(s.hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(conn, true)
			wg.Go(func() { s.serve(conn, cfg, &wg) })
		}
	})
	return s
}

func (s *testServer) serve(conn net.Conn, cfg *ssh.ServerConfig, wg *sync.WaitGroup) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		wg.Go(func() { s.session(ch, chReqs) })
	}
}

func (s *testServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(req.Type == "env", nil)
			continue
		}
		var exec struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &exec); err != nil {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		once.Do(func() {
			s.started <- exec.Command
			go func() {
				status := s.handler(ctx, exec.Command, ch, ch.Stderr())
				s.finished <- struct{}{}
				if status != noExitStatus {
					ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				}
				ch.Close()
			}()
		})
	}
	// The client closed the channel: stop the command, as sshd does.
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func dialTest(t *testing.T, srv *testServer, kp *KeyPair) *Client {
	t.Helper()
	c, err := DialTCP(testContext(t), srv.addr, Config{Signer: kp.Signer(), HostKeyFingerprint: srv.fingerprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewKeyPairMakesAuthorizedKeyLine(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	line := kp.AuthorizedKey()
	if strings.ContainsAny(line, "\r\n") {
		t.Errorf("authorized key %q has a line break", line)
	}
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(rest) != 0 {
		t.Fatalf("parse authorized key %q: %v (rest %q)", line, err, rest)
	}
	if pub.Type() != ssh.KeyAlgoED25519 || !bytes.Equal(pub.Marshal(), kp.Signer().PublicKey().Marshal()) {
		t.Errorf("authorized key %q is not the signer's ed25519 key", line)
	}
	if comment != keyComment {
		t.Errorf("comment = %q, want %q", comment, keyComment)
	}
	dec, err := base64.StdEncoding.DecodeString(kp.AuthorizedKeyBase64())
	if err != nil || string(dec) != line {
		t.Errorf("AuthorizedKeyBase64 decodes to %q, %v; want %q", dec, err, line)
	}
	if kp.Fingerprint() != ssh.FingerprintSHA256(pub) {
		t.Errorf("Fingerprint = %s, want %s", kp.Fingerprint(), ssh.FingerprintSHA256(pub))
	}
	other, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	if other.AuthorizedKey() == line {
		t.Errorf("two key pairs are the same")
	}
}

func TestDialAcceptsPinnedHostKeyAndRunsCommands(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), shHandler)
	c := dialTest(t, srv, kp)
	ctx := testContext(t)
	tests := []struct {
		cmd            string
		stdout, stderr string
		status         int
	}{
		{"echo out; echo err >&2; exit 3", "out\n", "err\n", 3},
		{"true", "", "", 0},
		{"printf 'a\\nb'", "a\nb", "", 0},
		{"exit 255", "", "", 255},
	}
	for _, tt := range tests {
		stdout, stderr, status, err := c.Run(ctx, tt.cmd)
		if err != nil {
			t.Fatalf("Run(%q): %v", tt.cmd, err)
		}
		if stdout != tt.stdout || stderr != tt.stderr || status != tt.status {
			t.Errorf("Run(%q) = %q, %q, %d; want %q, %q, %d", tt.cmd, stdout, stderr, status, tt.stdout, tt.stderr, tt.status)
		}
	}
}

func TestOutputFailsWithCommandStatusAndOutput(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), shHandler)
	c := dialTest(t, srv, kp)
	out, err := c.Output(testContext(t), "echo partial; echo 'ip: not found' >&2; exit 127")
	if err == nil {
		t.Fatalf("Output = %q, nil; want an error", out)
	}
	for _, want := range []string{`"echo partial; echo 'ip: not found' >&2; exit 127"`, "exit status 127", `"partial\n"`, `"ip: not found\n"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func TestDialRejectsWrongPin(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), shHandler)
	pinned := ssh.FingerprintSHA256(newSigner(t).PublicKey())
	var dials atomic.Int32
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		return TCPDialer(srv.addr)(ctx)
	}
	c, err := Dial(testContext(t), dial, Config{Signer: kp.Signer(), HostKeyFingerprint: pinned, RetryInterval: time.Millisecond})
	if err == nil {
		c.Close()
		t.Fatal("Dial accepted a host key that is not the pinned one")
	}
	var mismatch *HostKeyMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("Dial = %v, want a *HostKeyMismatchError", err)
	}
	for _, want := range []string{pinned, srv.fingerprint, "ssh-ed25519"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("dialled %d times, want 1: a wrong host key is no reason to retry", n)
	}
}

func TestDialRejectsMissingOrMalformedPin(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		t.Error("dialled despite a bad config")
		return nil, errors.New("must not dial")
	}
	for _, pin := range []string{"", "SHA256:", "MD5:00:11", "ssh-ed25519 AAAA", "SHA256:abc="} {
		_, err := Dial(testContext(t), dial, Config{Signer: kp.Signer(), HostKeyFingerprint: pin})
		if err == nil || !strings.Contains(err.Error(), "fingerprint") {
			t.Errorf("Dial with pin %q = %v, want an error about the fingerprint", pin, err)
		}
	}
	if _, err := Dial(testContext(t), dial, Config{HostKeyFingerprint: "SHA256:abc"}); err == nil {
		t.Errorf("Dial without a client key succeeded")
	}
}

func TestDialRejectsUnauthorizedKeyWithoutRetry(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, newSigner(t).PublicKey(), shHandler)
	var dials atomic.Int32
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		return TCPDialer(srv.addr)(ctx)
	}
	_, err = Dial(testContext(t), dial, Config{Signer: kp.Signer(), HostKeyFingerprint: srv.fingerprint, RetryInterval: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("Dial = %v, want an authentication error", err)
	}
	if n := dials.Load(); n != 1 {
		t.Errorf("dialled %d times, want 1", n)
	}
}

func TestDialRetriesWhileSSHDIsNotListening(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), shHandler)
	// A forwarder that closes each stream before the SSH banner, as a
	// port-forward to a port nobody listens on yet does.
	closer, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	go func() {
		for {
			conn, err := closer.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	var dials atomic.Int32
	dial := func(ctx context.Context) (net.Conn, error) {
		switch dials.Add(1) {
		case 1:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		case 2:
			return TCPDialer(closer.Addr().String())(ctx)
		case 3:
			client, server := net.Pipe()
			server.Close()
			return client, nil
		}
		return TCPDialer(srv.addr)(ctx)
	}
	c, err := Dial(testContext(t), dial, Config{Signer: kp.Signer(), HostKeyFingerprint: srv.fingerprint, RetryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := dials.Load(); n != 4 {
		t.Errorf("dialled %d times, want 4", n)
	}
	if _, _, status, err := c.Run(testContext(t), "exit 4"); err != nil || status != 4 {
		t.Errorf("Run after retries = %d, %v; want 4, nil", status, err)
	}
}

func TestDialGivesUpWhenContextEnds(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var dials atomic.Int32
	dial := func(context.Context) (net.Conn, error) {
		if dials.Add(1) == 3 {
			cancel()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	_, err = Dial(ctx, dial, Config{Signer: kp.Signer(), HostKeyFingerprint: "SHA256:abc", RetryInterval: time.Millisecond, Name: "pxe-client"})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("Dial = %v, want context.Canceled and the last dial error", err)
	}
	for _, want := range []string{"pxe-client", "connection refused", "attempt 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestDialAbortsHandshakeWhenContextEnds(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	// A server that accepts and never speaks.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		conn := <-accepted
		defer conn.Close()
		cancel()
	}()
	_, err = DialTCP(ctx, ln.Addr().String(), Config{Signer: kp.Signer(), HostKeyFingerprint: "SHA256:abc"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DialTCP = %v, want context.Canceled", err)
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error does not name the address: %v", err)
	}
}

func TestRunAbortsWhenContextEnds(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), func(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
		if cmd != "sleep 3600" {
			return shHandler(ctx, cmd, stdout, stderr)
		}
		<-ctx.Done()
		return noExitStatus
	})
	c := dialTest(t, srv, kp)
	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-srv.started
		cancel()
	}()
	_, _, status, err := c.Run(ctx, "sleep 3600")
	if !errors.Is(err, context.Canceled) || status != -1 {
		t.Fatalf("Run = %d, %v; want -1, context.Canceled", status, err)
	}
	if !strings.Contains(err.Error(), `run "sleep 3600" over ssh on 127.0.0.1:`) {
		t.Errorf("error does not name command and guest: %v", err)
	}
	// The session was closed, so the server stopped the command.
	select {
	case <-srv.finished:
	case <-time.After(testTimeout):
		t.Fatal("server command still running after Run returned")
	}
	// The connection is still usable.
	if _, _, status, err := c.Run(testContext(t), "exit 5"); err != nil || status != 5 {
		t.Errorf("Run after an aborted Run = %d, %v; want 5, nil", status, err)
	}
}

func TestRunReportsMissingExitStatus(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, kp.Signer().PublicKey(), func(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
		io.WriteString(stdout, "half")
		return noExitStatus
	})
	c := dialTest(t, srv, kp)
	if _, _, _, err := c.Run(testContext(t), "reboot"); err == nil {
		t.Fatal("Run without exit status succeeded")
	}
}

func TestInterfacesRunsCommandsAndMerges(t *testing.T) {
	kp, err := NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		IPLinkCommand:      readSample(t, "busybox-1.35", "ip-o-link.txt"),
		IPAddrCommand:      readSample(t, "busybox-1.35", "ip-o-addr.txt"),
		SysClassNetCommand: readSample(t, "busybox-1.35", "sys-class-net.txt"),
	}
	srv := startServer(t, kp.Signer().PublicKey(), func(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
		out, ok := outputs[cmd]
		if !ok {
			fmt.Fprintf(stderr, "sh: %s: not found\n", cmd)
			return 127
		}
		io.WriteString(stdout, out)
		return 0
	})
	c := dialTest(t, srv, kp)
	ifs, err := c.Interfaces(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	eth1, ok := InterfaceByMAC(ifs, mac(t, "de:00:00:00:00:de"))
	if !ok || eth1.Name != "eth1" || eth1.Up || eth1.OperState != "down" || eth1.IPv4 != nil || eth1.IPv6 != nil {
		t.Errorf("eth1 = %+v, %v; want eth1 down without addresses", eth1, ok)
	}

	delete(outputs, SysClassNetCommand)
	_, err = c.Interfaces(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "/sys/class/net") || !strings.Contains(err.Error(), "exit status 127") {
		t.Errorf("Interfaces with a failing command = %v, want an error naming it and its status", err)
	}
}
