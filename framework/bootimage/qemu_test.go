package bootimage

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
	"github.com/pxe-conformance/pxe-conformance/framework/qemu"
)

// Waits of the QEMU test, generous because TCG on a busy 2-core machine is
// slow; they bound the test, they are not what it checks.
const (
	qemuReadyTimeout = 4 * time.Minute
	qemuStepTimeout  = 90 * time.Second
)

// console collects a QEMU serial transcript and waits for text in it.
type console struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitFor polls until re matches the transcript after offset from, and
// returns the match and the offset where it ends.
func (c *console) waitFor(ctx context.Context, re *regexp.Regexp, from int, timeout time.Duration) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		s := c.String()
		if from <= len(s) {
			if loc := re.FindStringIndex(s[from:]); loc != nil {
				return s[from+loc[0] : from+loc[1]], from + loc[1], nil
			}
		}
		select {
		case <-ctx.Done():
			return "", 0, fmt.Errorf("wait for %q on the console: %w", re, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// qemuAccel asks the project's one accelerator probe (qemu.DetectAccel), which uses KVM only
// where a probe guest really runs under it: some hosts have a /dev/kvm that opens but hangs
// guests (REFERENCE §4). PXEC_ACCEL overrides, as everywhere else.
func qemuAccel(ctx context.Context, t *testing.T, kernel string) []string {
	t.Helper()
	accel, why, err := qemu.DetectAccel(ctx, kernel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("QEMU accelerator %s: %s", accel, why)
	return []string{"-accel", string(accel)}
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestPayloadBootsInQEMU boots the payload directly (-kernel/-initrd) with
// the two NICs of the documented scenario: eth0 on QEMU's user network,
// eth1 with the PXE MAC on a hub with nothing else on it.
func TestPayloadBootsInQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		prereq.Missing(t, "qemu-system-x86_64 not found")
	}
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the suite's QEMU tests run as root")
	}
	p := buildPayload(t)
	ctx, cancel := context.WithTimeout(context.Background(), qemuReadyTimeout+4*qemuStepTimeout)
	defer cancel()

	const pxeMAC = "de:00:00:00:00:de"
	nonce := randomHex(t, 8)
	password := randomHex(t, 8)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	authKey := base64.StdEncoding.EncodeToString(ssh.MarshalAuthorizedKey(sshPub))
	port := freeLoopbackPort(t)

	accel := qemuAccel(ctx, t, p.Kernel)
	args := append(accel,
		"-machine", "q35", "-m", "512", "-nodefaults", "-no-reboot",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-kernel", p.Kernel, "-initrd", p.Initrd,
		"-append", fmt.Sprintf("console=ttyS0,115200 quiet pxec.mac=%s pxec.nonce=%s pxec.authkey=%s pxec.password=%s", pxeMAC, nonce, authKey, password),
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22", port),
		"-device", "virtio-net-pci,netdev=n0,romfile=",
		// A hub with one port: the PXE NIC exists but nothing hears it.
		"-netdev", "hubport,id=n1,hubid=1",
		"-device", "virtio-net-pci,netdev=n1,mac="+pxeMAC+",romfile=",
		"-device", "virtio-rng-pci",
	)
	cmd := exec.Command(qemu, args...)
	con := &console{}
	cmd.Stdout = con
	cmd.Stderr = con
	serialIn, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", qemu, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("serial transcript:\n%s", con)
		}
	})

	line, end, err := con.waitFor(ctx, regexp.MustCompile(ReadyPattern), 0, qemuReadyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	readyAt := time.Since(start)
	readyCPU := processCPU(cmd.Process.Pid)
	ready, err := ParseReady(line)
	if err != nil {
		t.Fatal(err)
	}
	if ready.MAC.String() != pxeMAC || ready.Nonce != nonce || ready.Iface != "eth1" {
		t.Errorf("ready line %q: want mac %s, nonce %s, iface eth1", line, pxeMAC, nonce)
	}

	client, err := dialGuest(ctx, port, signer, ready.HostKeyFingerprint)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput("ip -o link; ip -o addr; echo eth1-operstate=$(cat /sys/class/net/eth1/operstate); echo eth1-disable_ipv6=$(cat /proc/sys/net/ipv6/conf/eth1/disable_ipv6); hostname")
	sess.Close()
	if err != nil {
		t.Fatalf("run ip over SSH: %v\n%s", err, out)
	}
	sshAt := time.Since(start)
	sshCPU := processCPU(cmd.Process.Pid)
	checkGuestNetwork(t, string(out), pxeMAC)

	if err := consoleLogin(ctx, con, serialIn, end, password); err != nil {
		t.Error(err)
	}
	loginAt := time.Since(start)

	transcript := con.String()
	if n := strings.Count(transcript, ReadyMarker); n != 1 {
		t.Errorf("ready line printed %d times, want once", n)
	}
	for _, l := range strings.Split(transcript, "\n") {
		if strings.Contains(l, "not found") || strings.Contains(l, "pxec: ") {
			t.Errorf("guest complained: %q", strings.TrimSpace(l))
		}
	}
	// Wall time depends on what else the host runs; QEMU's own CPU time
	// compares across runs on a busy machine.
	t.Logf("accel %v: ready line %.1fs, SSH command done %.1fs, console login %.1fs after QEMU start (QEMU CPU time %.1fs at ready, %.1fs at SSH)",
		accel[1], readyAt.Seconds(), sshAt.Seconds(), loginAt.Seconds(), readyCPU.Seconds(), sshCPU.Seconds())
}

// processCPU returns the user+system CPU time a process has used so far, or
// zero if /proc does not say.
func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15 (in clock ticks, 100 Hz
	// on Linux).
	rest := string(data[strings.LastIndexByte(string(data), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// dialGuest connects to the guest's forwarded SSH port as root, accepting
// only the host key whose fingerprint the ready line announced.
func dialGuest(ctx context.Context, port int, signer ssh.Signer, fingerprint string) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if key.Type() != HostKeyAlgorithm {
				return fmt.Errorf("host key type %s, want %s", key.Type(), HostKeyAlgorithm)
			}
			if got := ssh.FingerprintSHA256(key); got != fingerprint {
				return fmt.Errorf("host key %s, ready line announced %s", got, fingerprint)
			}
			return nil
		},
		Timeout: 30 * time.Second,
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, qemuStepTimeout)
	defer cancel()
	for {
		c, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			return c, nil
		}
		// sshd listens before the ready line, but slirp's forward may
		// lag; a host key mismatch is final.
		if strings.Contains(err.Error(), "host key") {
			return nil, fmt.Errorf("ssh to %s: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh to %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkGuestNetwork asserts the contract's network state on the output of
// `ip -o link; ip -o addr` and the extra lines.
func checkGuestNetwork(t *testing.T, out, pxeMAC string) {
	t.Helper()
	links := map[string]string{}
	addrs := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && strings.HasSuffix(f[1], ":") && strings.HasPrefix(f[2], "<"):
			links[strings.TrimSuffix(f[1], ":")] = l
		case len(f) >= 3 && (f[2] == "inet" || f[2] == "inet6"):
			addrs[f[1]] = append(addrs[f[1]], f[2]+" "+f[3])
		}
	}
	eth1, ok := links["eth1"]
	if !ok {
		t.Fatalf("no eth1 in:\n%s", out)
	}
	if !strings.Contains(eth1, "link/ether "+pxeMAC) {
		t.Errorf("eth1 has not the PXE MAC %s: %s", pxeMAC, eth1)
	}
	flags := eth1[strings.Index(eth1, "<")+1 : strings.Index(eth1, ">")]
	for _, fl := range strings.Split(flags, ",") {
		if fl == "UP" {
			t.Errorf("eth1 is administratively up: %s", eth1)
		}
	}
	if !strings.Contains(out, "eth1-operstate=down") {
		t.Errorf("eth1 operstate is not down:\n%s", out)
	}
	if !strings.Contains(out, "eth1-disable_ipv6=1") {
		t.Errorf("IPv6 is not disabled on eth1:\n%s", out)
	}
	if a := addrs["eth1"]; len(a) > 0 {
		t.Errorf("eth1 has addresses %v, want none", a)
	}
	hasInet := false
	for _, a := range addrs["eth0"] {
		hasInet = hasInet || strings.HasPrefix(a, "inet ")
	}
	if !hasInet {
		t.Errorf("eth0 has no IPv4 address: %v", addrs["eth0"])
	}
	if !strings.Contains(out, "\npxec-guest") {
		t.Errorf("hostname is not pxec-guest:\n%s", out)
	}
	t.Logf("guest network:\n%s", out)
}

// consoleLogin logs in as root on the serial console and runs a command
// whose output differs from its echo. Each step waits for text printed after
// the previous input: busybox login discards type-ahead.
func consoleLogin(ctx context.Context, con *console, in io.Writer, from int, password string) error {
	_, end, err := con.waitFor(ctx, regexp.MustCompile(`login: $`), from, qemuStepTimeout)
	if err != nil {
		return err
	}
	if _, err := in.Write([]byte("root\n")); err != nil {
		return fmt.Errorf("type login name: %w", err)
	}
	if _, end, err = con.waitFor(ctx, regexp.MustCompile(`Password: $`), end, qemuStepTimeout); err != nil {
		return err
	}
	if _, err := in.Write([]byte(password + "\n")); err != nil {
		return fmt.Errorf("type password: %w", err)
	}
	// No end anchor: ash follows its prompt with a cursor position query.
	if _, end, err = con.waitFor(ctx, regexp.MustCompile(`root@pxec-guest:[^\n]*# `), end, qemuStepTimeout); err != nil {
		return fmt.Errorf("console login as root: %w", err)
	}
	if _, err := in.Write([]byte("echo \"$((6*7))-$(hostname)\"\n")); err != nil {
		return fmt.Errorf("type command: %w", err)
	}
	if _, _, err = con.waitFor(ctx, regexp.MustCompile(`42-pxec-guest`), end, qemuStepTimeout); err != nil {
		return fmt.Errorf("run a command on the console: %w", err)
	}
	return nil
}
