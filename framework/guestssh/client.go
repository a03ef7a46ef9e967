package guestssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// defaultRetryInterval paces redials while the guest's sshd is not yet
// listening; sshd starts a moment after the guest prints its ready line.
const defaultRetryInterval = 250 * time.Millisecond

// defaultHostKeyAlgorithms are the plain key types sshd hosts use, without
// certificates and SHA-1 RSA. Pinning needs the pinned key to be the one
// negotiated: true for a guest with a single host key, as ours has (ECDSA);
// a guest with several keys needs Config.HostKeyAlgorithms.
var defaultHostKeyAlgorithms = []string{
	ssh.KeyAlgoED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// Dialer opens the byte stream an SSH connection runs over: a TCP
// connection, one made inside a network namespace, or a KubeVirt
// port-forward stream.
type Dialer func(ctx context.Context) (net.Conn, error)

// TCPDialer returns a Dialer that connects to addr ("host:port") over TCP.
func TCPDialer(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Config says whom to log in as and which host key to accept.
type Config struct {
	// User to log in as; empty means root.
	User string
	// Signer is the client's private key, e.g. KeyPair.Signer().
	Signer ssh.Signer
	// HostKeyFingerprint pins the guest's host key, in OpenSSH form
	// ("SHA256:" and unpadded base64), as the guest printed it on its
	// console. Required: there is no trust on first use.
	HostKeyFingerprint string
	// HostKeyAlgorithms overrides the host key types to negotiate, most
	// preferred first; set it to the pinned key's type when the guest has
	// host keys of several types.
	HostKeyAlgorithms []string
	// RetryInterval is the pause between attempts while the guest refuses
	// or drops connections; zero means 250ms.
	RetryInterval time.Duration
	// Name names the guest in errors; empty means the connection's remote
	// address.
	Name string
}

// HostKeyMismatchError reports a guest host key that is not the pinned one.
type HostKeyMismatchError struct {
	// Name is the guest as Config.Name or the remote address names it.
	Name string
	// Pinned is the expected fingerprint.
	Pinned string
	// Presented is the fingerprint of the key the guest offered.
	Presented string
	// KeyType is the presented key's type, e.g. "ssh-ed25519".
	KeyType string
}

// Error names both fingerprints.
func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("ssh host key of %s is %s %s, want pinned %s", e.Name, e.KeyType, e.Presented, e.Pinned)
}

// Client is a logged-in SSH connection to a guest.
type Client struct {
	ssh  *ssh.Client
	name string
}

// validate checks cfg before any connection is made.
func (cfg *Config) validate() error {
	if cfg.Signer == nil {
		return errors.New("no client key (Config.Signer)")
	}
	fp := cfg.HostKeyFingerprint
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) == len("SHA256:") || strings.ContainsAny(fp, " \t\r\n=") {
		return fmt.Errorf("host key fingerprint %q is not of the form SHA256:<unpadded base64>", fp)
	}
	if cfg.RetryInterval < 0 {
		return fmt.Errorf("retry interval %v is negative", cfg.RetryInterval)
	}
	return nil
}

// Dial connects with dial and logs in, dialling again while the guest
// refuses or drops the connection (its sshd is still starting) until ctx
// ends. A host key mismatch or a refused login fails at once. ctx bounds
// only the dialling and the handshake; the Client lives until Close.
func Dial(ctx context.Context, dial Dialer, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("ssh to %s: %w", nameOr(cfg.Name, "guest"), err)
	}
	if dial == nil {
		return nil, fmt.Errorf("ssh to %s: dialer is nil", nameOr(cfg.Name, "guest"))
	}
	interval := cfg.RetryInterval
	if interval == 0 {
		interval = defaultRetryInterval
	}
	for attempt := 1; ; attempt++ {
		conn, err := dial(ctx)
		if err == nil {
			var c *Client
			if c, err = NewClient(ctx, conn, cfg); err == nil {
				return c, nil
			}
		} else {
			err = fmt.Errorf("ssh to %s: dial: %w", nameOr(cfg.Name, "guest"), err)
		}
		giveUp := func() (*Client, error) {
			return nil, fmt.Errorf("%w; gave up after attempt %d: %w", err, attempt, ctx.Err())
		}
		switch {
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return nil, err
		case ctx.Err() != nil:
			return giveUp()
		case !retryable(err) && attempt > 1:
			return nil, fmt.Errorf("%w (attempt %d)", err, attempt)
		case !retryable(err):
			return nil, err
		}
		select {
		case <-time.After(interval):
		case <-ctx.Done():
			return giveUp()
		}
	}
}

// DialTCP is Dial over TCP to addr ("host:port").
func DialTCP(ctx context.Context, addr string, cfg Config) (*Client, error) {
	if cfg.Name == "" {
		cfg.Name = addr
	}
	return Dial(ctx, TCPDialer(addr), cfg)
}

// NewClient logs in over an open connection, once, with no retry. It takes
// ownership of conn and closes it on failure or when ctx ends during the
// handshake.
func NewClient(ctx context.Context, conn net.Conn, cfg Config) (*Client, error) {
	name := cfg.Name
	if name == "" {
		name = "guest"
		if a := conn.RemoteAddr(); a != nil {
			name = a.String()
		}
	}
	if err := cfg.validate(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	algos := cfg.HostKeyAlgorithms
	if len(algos) == 0 {
		algos = defaultHostKeyAlgorithms
	}
	var mismatch *HostKeyMismatchError
	clientCfg := &ssh.ClientConfig{
		User: nameOr(cfg.User, "root"),
		Auth: []ssh.AuthMethod{ssh.PublicKeys(cfg.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if got := ssh.FingerprintSHA256(key); got != cfg.HostKeyFingerprint {
				mismatch = &HostKeyMismatchError{Name: name, Pinned: cfg.HostKeyFingerprint, Presented: got, KeyType: key.Type()}
				return mismatch
			}
			return nil
		},
		HostKeyAlgorithms: algos,
	}

	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, name, clientCfg)
	if !stop() {
		// ctx ended during the handshake and closed conn.
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("ssh to %s: handshake: %w", name, ctx.Err())
	}
	if err != nil {
		conn.Close()
		if mismatch != nil {
			return nil, mismatch
		}
		return nil, fmt.Errorf("ssh to %s: %w", name, err)
	}
	return &Client{ssh: ssh.NewClient(sc, chans, reqs), name: name}, nil
}

// retryable says whether err looks like a guest whose sshd is not ready:
// the port is closed, or the connection dies before the SSH banner (a
// port-forward to a port nobody listens on yet).
func retryable(err error) bool {
	var mismatch *HostKeyMismatchError
	if errors.As(err, &mismatch) {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.ErrClosedPipe)
}

// Run runs cmd on the guest and returns its output and exit status. A
// non-zero exit status is not an error; err reports only a failure to run
// cmd or to learn its status, or ctx ending, which closes the session.
func (c *Client) Run(ctx context.Context, cmd string) (stdout, stderr string, exitStatus int, err error) {
	fail := func(err error) (string, string, int, error) {
		return "", "", -1, fmt.Errorf("run %q over ssh on %s: %w", cmd, c.name, err)
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	var outBuf, errBuf bytes.Buffer
	sess.Stdout, sess.Stderr = &outBuf, &errBuf
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// Closing the channel ends the command for a well-behaved sshd;
		// the buffers stay with the abandoned Run.
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return fail(ctx.Err())
	}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return outBuf.String(), errBuf.String(), 0, nil
	case errors.As(err, &exit) && exit.Signal() != "":
		return fail(fmt.Errorf("killed by signal %s (stdout %q, stderr %q)", exit.Signal(), outBuf.String(), errBuf.String()))
	case errors.As(err, &exit):
		return outBuf.String(), errBuf.String(), exit.ExitStatus(), nil
	default:
		return fail(err)
	}
}

// Output runs cmd and returns its stdout, failing with an error that
// carries the command, its exit status, stdout and stderr when the status
// is not zero.
func (c *Client) Output(ctx context.Context, cmd string) (string, error) {
	stdout, stderr, status, err := c.Run(ctx, cmd)
	if err != nil {
		return "", err
	}
	if status != 0 {
		return stdout, fmt.Errorf("run %q over ssh on %s: exit status %d; stdout %q; stderr %q", cmd, c.name, status, stdout, stderr)
	}
	return stdout, nil
}

// newSession opens a session channel, giving up when ctx ends.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	type result struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := c.ssh.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("open session: %w", r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("open session: %w", ctx.Err())
	}
}

// Close ends the SSH connection and closes the stream under it.
func (c *Client) Close() error {
	if err := c.ssh.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close ssh connection to %s: %w", c.name, err)
	}
	return nil
}

func nameOr(name, fallback string) string {
	if name != "" {
		return name
	}
	return fallback
}
