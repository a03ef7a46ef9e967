package bootimage

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pxe-conformance/pxe-conformance/fixtures/guest"
)

// guestRoot lays out Debian's busybox, the applet links and the guest files
// in a temporary directory, so the guest's shell code runs on the build host
// with only the commands it will have in the guest.
type guestRoot struct {
	dir string
}

func newGuestRoot(t *testing.T) guestRoot {
	t.Helper()
	bb := filepath.Join(unpackedPackages(t, "busybox-static")["busybox-static"], "bin", "busybox")
	root := guestRoot{dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(root.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bb, filepath.Join(root.dir, "bin", "busybox")); err != nil {
		t.Fatal(err)
	}
	applets, err := guest.Applets()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		p := filepath.Join(root.dir, a)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(bb, p); err != nil {
			t.Fatal(err)
		}
	}
	files, err := guest.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(root.dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// sh runs script with the guest's lib.sh sourced and only the guest's
// applets in PATH; args are $1...
func (g guestRoot) sh(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(g.dir, "bin", "sh"), append([]string{"-c", ". " + g.path("etc/pxec/lib.sh") + "\n" + script, "sh"}, args...)...)
	cmd.Env = []string{"PATH=" + g.path("sbin") + ":" + g.path("bin")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guest shell: %v\n%s", err, out)
	}
	return string(out)
}

func (g guestRoot) path(p string) string { return filepath.Join(g.dir, p) }

func TestGuestScriptsParseWithBusyboxSh(t *testing.T) {
	g := newGuestRoot(t)
	for _, p := range []string{"init", "etc/pxec/lib.sh", "etc/pxec/udhcpc.script"} {
		t.Run(p, func(t *testing.T) {
			out, err := exec.Command(g.path("bin/sh"), "-n", g.path(p)).CombinedOutput()
			if err != nil {
				t.Errorf("busybox sh -n %s: %v\n%s", p, err, out)
			}
		})
	}
}

func TestGuestParsesKernelCommandLine(t *testing.T) {
	g := newGuestRoot(t)
	tests := []struct {
		name    string
		cmdline string
		want    string // mac|nonce|authkey|password
	}{
		{"all fields", "console=ttyS0,115200 quiet pxec.mac=de:00:00:00:00:de pxec.nonce=0a1b pxec.authkey=c3NoLWVk+/== pxec.password=s3cret initrd=initrd.img",
			"de:00:00:00:00:de|0a1b|c3NoLWVk+/==|s3cret"},
		{"MAC is lowered", "pxec.mac=DE:AD:BE:EF:00:01", "de:ad:be:ef:00:01|||"},
		{"missing fields stay empty", "console=ttyS0 quiet", "|||"},
		{"glob characters are not expanded", "pxec.password=* pxec.nonce=?", "|?||*"},
		{"similar names are ignored", "pxec.macx=1 xpxec.mac=2 pxec.mac=", "|||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := g.sh(t, `pxec_parse_cmdline "$1"; printf '%s|%s|%s|%s' "$PXEC_MAC" "$PXEC_NONCE" "$PXEC_AUTHKEY" "$PXEC_PASSWORD"`, tt.cmdline)
			if got != tt.want {
				t.Errorf("parsed %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGuestFingerprintMatchesOpenSSH(t *testing.T) {
	g := newGuestRoot(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, pub := range map[string]any{"ed25519": edKey.Public(), "rsa": rsaKey.Public(), "ecdsa": ecKey.Public()} {
		t.Run(name, func(t *testing.T) {
			sp, err := ssh.NewPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " root@pxec-guest"
			got := strings.TrimSpace(g.sh(t, `pxec_fingerprint "$1"`, line))
			if want := ssh.FingerprintSHA256(sp); got != want {
				t.Errorf("pxec_fingerprint = %q, want %q", got, want)
			}
		})
	}
}

// The init reads the fingerprint from dropbearkey's own output: run Debian's
// dropbearkey (through its packaged loader) and compare with Go's reading of
// the key it printed; a dropbearkey that prints another form must still give
// OpenSSH's.
func TestGuestReadsDropbearkeyFingerprint(t *testing.T) {
	g := newGuestRoot(t)
	trees := unpackedPackages(t, dropbearPlan(t)...)
	var roots []string
	for _, d := range trees {
		roots = append(roots, d)
	}
	v := rootView{roots: roots}
	loader, err := v.resolve("lib64/ld-linux-x86-64.so.2")
	if err != nil {
		t.Fatal(err)
	}
	keygen, err := v.resolve("usr/bin/dropbearkey")
	if err != nil {
		t.Fatal(err)
	}
	var libPath []string
	for _, r := range roots {
		for _, d := range libraryDirs() {
			libPath = append(libPath, filepath.Join(r, d))
		}
	}
	key := filepath.Join(t.TempDir(), "hostkey")
	out, err := exec.Command(loader.Host, "--library-path", strings.Join(libPath, ":"), keygen.Host, "-t", "ecdsa", "-s", "256", "-f", key).CombinedOutput()
	if err != nil {
		t.Fatalf("dropbearkey: %v\n%s", err, out)
	}
	var pubLine string
	for _, l := range strings.Split(string(out), "\n") {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err == nil {
			pubLine = l
		}
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pubLine))
	if err != nil {
		t.Fatalf("parse dropbearkey's public key %q: %v", pubLine, err)
	}
	want := ssh.FingerprintSHA256(pub)
	tests := []struct {
		name   string
		output string
	}{
		{"bookworm's dropbearkey output", string(out)},
		{"older dropbearkey printing MD5", "Public key portion is:\n" + pubLine + "\nFingerprint: md5 12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0\n"},
		{"no fingerprint line", "Public key portion is:\n" + pubLine + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "out")
			if err := os.WriteFile(f, []byte(tt.output), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(g.sh(t, `pxec_hostkey_fingerprint "$1"`, f)); got != want {
				t.Errorf("pxec_hostkey_fingerprint = %q, want %q", got, want)
			}
		})
	}
}

func TestGuestReadyLineParses(t *testing.T) {
	g := newGuestRoot(t)
	fp := testFingerprint(t)
	line := g.sh(t, `pxec_ready_line "$1" "$2" "$3" "$4"`, "de:00:00:00:00:de", "eth1", "cafe", fp)
	r, err := ParseReady(line)
	if err != nil {
		t.Fatal(err)
	}
	if r.MAC.String() != "de:00:00:00:00:de" || r.Iface != "eth1" || r.Nonce != "cafe" || r.HostKeyFingerprint != fp {
		t.Errorf("ParseReady(%q) = %+v", line, r)
	}
}
