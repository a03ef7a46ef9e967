package guestssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyComment marks the key in the guest's authorized_keys, so a reader of
// a transcript or a guest image can tell where it came from.
const keyComment = "pxec-conformance"

// KeyPair is an ephemeral ed25519 SSH key for one test run.
type KeyPair struct {
	signer        ssh.Signer
	authorizedKey string
}

// NewKeyPair makes a fresh ed25519 key pair.
func NewKeyPair() (*KeyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("make ssh signer: %w", err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(signer.PublicKey())), "\n")
	return &KeyPair{signer: signer, authorizedKey: line + " " + keyComment}, nil
}

// Signer returns the private key, for Config.Signer.
func (k *KeyPair) Signer() ssh.Signer { return k.signer }

// AuthorizedKey returns the public key as one OpenSSH authorized_keys line,
// without a trailing newline.
func (k *KeyPair) AuthorizedKey() string { return k.authorizedKey }

// AuthorizedKeyBase64 returns AuthorizedKey in standard base64, the value
// of the kernel command line's pxec.authkey: the line itself has spaces.
func (k *KeyPair) AuthorizedKeyBase64() string {
	return base64.StdEncoding.EncodeToString([]byte(k.authorizedKey))
}

// Fingerprint returns the public key's OpenSSH SHA256 fingerprint, for logs.
func (k *KeyPair) Fingerprint() string {
	return ssh.FingerprintSHA256(k.signer.PublicKey())
}
