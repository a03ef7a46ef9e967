package bootimage

import (
	"crypto/ed25519"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testFingerprint is the fingerprint of a fixed ed25519 key, as OpenSSH
// prints it.
func testFingerprint(t *testing.T) string {
	t.Helper()
	pub := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public()
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(sp)
}

func TestParseReady(t *testing.T) {
	fp := testFingerprint(t)
	valid := "PXEC-READY mac=de:00:00:00:00:de iface=eth1 nonce=0123abcd hostkey=" + fp
	tests := []struct {
		name    string
		line    string
		wantErr string // empty: valid, fields as in valid
	}{
		{"plain line", valid, ""},
		{"with CR LF", valid + "\r\n", ""},
		{"console text around", "[    7.1] random: crng init done\r\n" + valid + "\r\npxec-guest login: ", ""},
		{"ANSI escapes around and inside", "\x1b[2J\x1b[1;1H" + strings.Replace(valid, "iface=", "\x1b[0miface=", 1) + "\x1b[K", ""},
		{"upper-case MAC", strings.Replace(valid, "de:00:00:00:00:de", "DE:00:00:00:00:DE", 1), ""},
		{"no marker", "login: root", "no PXEC-READY marker"},
		{"marker only", "PXEC-READY", "missing mac, iface, nonce, hostkey"},
		{"missing nonce", strings.Replace(valid, "nonce=0123abcd ", "", 1), "missing nonce"},
		{"fields after newline do not count", "PXEC-READY mac=de:00:00:00:00:de iface=eth1\nnonce=1 hostkey=" + fp, "missing nonce, hostkey"},
		{"duplicate field", valid + " nonce=other", "nonce given twice"},
		{"garbled MAC", strings.Replace(valid, "de:00:00:00:00:de", "de:00:00:0", 1), "not an Ethernet MAC"},
		{"EUI-64 is not an Ethernet MAC", strings.Replace(valid, "de:00:00:00:00:de", "de:00:00:00:00:00:00:de", 1), "not an Ethernet MAC"},
		{"truncated fingerprint", valid[:len(valid)-5], "is not SHA256:"},
		{"padded fingerprint", valid + "=", "is not SHA256:"},
		{"MD5 fingerprint", strings.Replace(valid, fp, "MD5:12:34:56", 1), "is not SHA256:"},
		{"interface name with slash", strings.Replace(valid, "iface=eth1", "iface=a/b", 1), "not an interface name"},
		{"guest found no PXE interface", strings.Replace(strings.Replace(valid, "de:00:00:00:00:de", "none", 1), "eth1", "none", 1), "=none"},
		{"guest got no nonce", strings.Replace(valid, "0123abcd", "none", 1), "nonce=none"},
		{"guest has no host key", strings.Replace(valid, fp, "none", 1), "hostkey=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseReady(tt.line)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseReady: error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseReady: %v", err)
			}
			if r.MAC.String() != "de:00:00:00:00:de" || r.Iface != "eth1" || r.Nonce != "0123abcd" || r.HostKeyFingerprint != fp {
				t.Errorf("ParseReady = %+v", r)
			}
		})
	}
}

func TestReadyStringParsesBack(t *testing.T) {
	want, err := ParseReady("PXEC-READY mac=52:54:00:12:34:56 iface=enp1s0 nonce=ff hostkey=" + testFingerprint(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReady(want.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("round trip: %q, want %q", got, want)
	}
}

func TestReadyPatternWaitsForTheWholeLine(t *testing.T) {
	fp := testFingerprint(t)
	line := "PXEC-READY mac=de:00:00:00:00:de iface=eth1 nonce=42 hostkey=" + fp
	re := regexp.MustCompile(ReadyPattern)
	tests := []struct {
		name string
		text string
		want bool
	}{
		{"complete line among console text", "boot...\r\n" + line + "\r\nlogin: ", true},
		{"line still arriving", "boot...\r\n" + line[:len(line)-3], false},
		{"host key none", strings.Replace(line, fp, "none", 1) + "\r\n", true},
		{"host key none still arriving", strings.Replace(line, fp, "no", 1), false},
		{"no ready line", "pxec: no pxec.mac on the kernel command line\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := re.MatchString(tt.text); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
			if tt.want {
				if _, err := ParseReady(re.FindString(tt.text)); err != nil && !strings.Contains(err.Error(), "=none") {
					t.Errorf("ParseReady of the match: %v", err)
				}
			}
		})
	}
}

func TestCmdlineCarriesWhatInitReads(t *testing.T) {
	got := Cmdline("c3NoLWVkMjU1MTk=", "pw")
	want := "console=ttyS0,115200 quiet pxec.authkey=c3NoLWVkMjU1MTk= pxec.password=pw"
	if got != want {
		t.Errorf("Cmdline = %q, want %q", got, want)
	}
}
