package procedure

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
)

// sshTarget is a fakeTarget whose SSH port is an in-process server: it accepts the run's key,
// and answers every command with exit status 0.
type sshTarget struct {
	*fakeTarget
	hostKey ssh.Signer
	authKey ssh.PublicKey
}

func newSSHTarget(t *testing.T, keys *guestssh.KeyPair) *sshTarget {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return &sshTarget{fakeTarget: newFakeTarget(t), hostKey: host, authKey: keys.Signer().PublicKey()}
}

// DialSSH connects over loopback: net.Pipe does not buffer, and both ends of an SSH handshake
// write before they read.
func (s *sshTarget) DialSSH(ctx context.Context) (net.Conn, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var d net.Dialer
	client, err := d.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		return nil, err
	}
	server, err := l.Accept()
	if err != nil {
		client.Close()
		return nil, err
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		if string(key.Marshal()) != string(s.authKey.Marshal()) {
			return nil, errors.New("key not authorized")
		}
		return nil, nil
	}}
	cfg.AddHostKey(s.hostKey)
	go func() {
		_, chans, reqs, err := ssh.NewServerConn(server, cfg)
		if err != nil {
			return
		}
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, chReqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go func() {
				defer ch.Close()
				for r := range chReqs {
					if r.Type != "exec" {
						r.Reply(false, nil)
						continue
					}
					r.Reply(true, nil)
					ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
					return
				}
			}()
		}
	}()
	return client, nil
}

func TestSSHPinsTheHostKeyAndRunsACommand(t *testing.T) {
	keys, err := guestssh.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	target := newSSHTarget(t, keys)
	b := testBoot(target.fakeTarget, 10*time.Second)
	b.Target = target
	c, err := b.SSH(callerCtx(t), keys, ssh.FingerprintSHA256(target.hostKey.PublicKey()), "fake guest")
	if err != nil {
		t.Fatalf("SSH with the guest's own host key: %v", err)
	}
	c.Close()
	if m := b.Timings.Marks(); len(m) != 1 || m[0].Step != StepSSH {
		t.Errorf("marks %v, want ssh", m)
	}
}

func TestSSHRefusesAnotherHostKey(t *testing.T) {
	keys, err := guestssh.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	target := newSSHTarget(t, keys)
	b := testBoot(target.fakeTarget, time.Hour)
	b.Target = target
	b.Timeouts.SSH = time.Second
	other := newSSHTarget(t, keys)
	ctx := callerCtx(t)
	_, err = b.SSH(ctx, keys, ssh.FingerprintSHA256(other.hostKey.PublicKey()), "fake guest")
	var mismatch *guestssh.HostKeyMismatchError
	if !errors.As(err, &mismatch) {
		t.Errorf("SSH with another pinned key = %v, want a HostKeyMismatchError", err)
	}
	endedOnItsOwn(t, ctx)
}
