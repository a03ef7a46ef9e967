package bootimage

import (
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// ReadyMarker starts the line the guest prints once sshd listens.
const ReadyMarker = "PXEC-READY"

// HostKeyAlgorithm is the type of the guest's SSH host key. Bookworm's
// dropbear also offers rsa-sha2-256 without an RSA key and aborts the
// handshake when a client picks it; clients that rank ECDSA above RSA, as Go's
// x/crypto/ssh and OpenSSH do by default, never pick it, and a client may
// restrict itself to this algorithm.
const HostKeyAlgorithm = "ecdsa-sha2-nistp256"

// Cmdline is the guest kernel command line that fixtures/guest's /init reads, without the
// per-boot pxec.mac and pxec.nonce the PXE server adds: the serial console, root's SSH key
// (an authorized_keys line in base64) and root's console password.
func Cmdline(authorizedKeyBase64, password string) string {
	return strings.Join([]string{
		"console=ttyS0,115200", "quiet",
		"pxec.authkey=" + authorizedKeyBase64,
		"pxec.password=" + password,
	}, " ")
}

// ReadyPattern matches a complete ready line in console output (its end is
// the host key, so a line still arriving does not match yet); escape
// sequences must be stripped first, as ParseReady does.
const ReadyPattern = `PXEC-READY mac=\S+ iface=\S+ nonce=\S+ hostkey=(?:SHA256:[A-Za-z0-9+/]{43}|none\b)`

// Ready is what the guest's ready line tells.
type Ready struct {
	// MAC is read from /sys of the interface whose MAC is pxec.mac.
	MAC net.HardwareAddr
	// Iface is that interface's name in the guest (normally eth1).
	Iface string
	// Nonce echoes pxec.nonce, which ties the boot to one served script.
	Nonce string
	// HostKeyFingerprint is the SSH host key's SHA256 fingerprint in
	// OpenSSH's form, as ssh.FingerprintSHA256 prints it. The key is
	// HostKeyAlgorithm's.
	HostKeyFingerprint string
}

// String renders r as the guest prints it.
func (r Ready) String() string {
	return fmt.Sprintf("%s mac=%s iface=%s nonce=%s hostkey=%s", ReadyMarker, r.MAC, r.Iface, r.Nonce, r.HostKeyFingerprint)
}

// ParseReady reads the ready line out of console text: escape sequences, \r
// and text before the marker are ignored; the line ends at the first newline.
// Every field must be present and valid; "none", which the guest prints for a
// value it could not determine, is an error that says so.
func ParseReady(line string) (Ready, error) {
	// CSI and two-character escape sequences, which serial consoles
	// interleave with text.
	ansiEscape := regexp.MustCompile(`\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])`)
	// OpenSSH's SHA256 fingerprint: 32 bytes, base64 without padding.
	fingerprintSyntax := regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)
	s := ansiEscape.ReplaceAllString(line, "")
	s = strings.ReplaceAll(s, "\r", "")
	i := strings.Index(s, ReadyMarker)
	if i < 0 {
		return Ready{}, fmt.Errorf("parse ready line %q: no %s marker", line, ReadyMarker)
	}
	s = s[i+len(ReadyMarker):]
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		s = s[:j]
	}
	fields := map[string]string{}
	for _, tok := range strings.Fields(s) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			continue
		}
		switch k {
		case "mac", "iface", "nonce", "hostkey":
			if _, dup := fields[k]; dup {
				return Ready{}, fmt.Errorf("parse ready line %q: %s given twice", line, k)
			}
			fields[k] = v
		}
	}
	var missing []string
	for _, k := range []string{"mac", "iface", "nonce", "hostkey"} {
		if _, ok := fields[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Ready{}, fmt.Errorf("parse ready line %q: missing %s", line, strings.Join(missing, ", "))
	}
	for k, why := range map[string]string{
		"mac":     "no interface has the MAC of pxec.mac, or pxec.mac was not given",
		"iface":   "no interface has the MAC of pxec.mac, or pxec.mac was not given",
		"nonce":   "pxec.nonce was not on the kernel command line",
		"hostkey": "the guest could not make or read its SSH host key",
	} {
		if fields[k] == "none" {
			return Ready{}, fmt.Errorf("parse ready line %q: %s=none: %s", line, k, why)
		}
	}
	mac, err := net.ParseMAC(fields["mac"])
	if err != nil || len(mac) != 6 {
		return Ready{}, fmt.Errorf("parse ready line %q: mac %q is not an Ethernet MAC", line, fields["mac"])
	}
	if iface := fields["iface"]; iface == "" || len(iface) > 15 || strings.Contains(iface, "/") {
		return Ready{}, fmt.Errorf("parse ready line %q: iface %q is not an interface name", line, iface)
	}
	if fields["nonce"] == "" {
		return Ready{}, fmt.Errorf("parse ready line %q: empty nonce", line)
	}
	fp := fields["hostkey"]
	if !fingerprintSyntax.MatchString(fp) {
		return Ready{}, fmt.Errorf("parse ready line %q: hostkey %q is not SHA256:<43 base64 characters>", line, fp)
	}
	if _, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(fp, "SHA256:")); err != nil {
		return Ready{}, fmt.Errorf("parse ready line %q: hostkey %q: %w", line, fp, err)
	}
	return Ready{MAC: mac, Iface: fields["iface"], Nonce: fields["nonce"], HostKeyFingerprint: fp}, nil
}
