package console

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// openPTY returns a pseudo-terminal's master and its slave.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	rc, err := master.SyscallConn()
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("access /dev/ptmx: %w", err)
	}
	var n int
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		if ioctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioctlErr != nil {
			return
		}
		n, ioctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	})
	if err == nil {
		err = ioctlErr
	}
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	name := fmt.Sprintf("/dev/pts/%d", n)
	slave, err = os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return master, slave, nil
}

// loginScript imitates a getty and login on a real tty: the kernel's line
// discipline echoes input and turns "\n" into "\r\n", and the password is
// read with echo off, as login(1) does.
const loginScript = `
while :; do
	printf 'pxec-guest login: '
	IFS= read -r u || exit 0
	[ -n "$u" ] || continue
	stty -echo; printf 'Password: '
	IFS= read -r p; stty echo; echo
	if [ "$u" = root ] && [ "$p" = "$PXEC_TEST_PASSWORD" ]; then
		PS1='pxec-guest:~# ' exec "$@" -i
	fi
	echo 'Login incorrect'
done
`

// startLoginOnPTY runs loginScript on a fresh pty, with shell as the
// login shell, and returns a Console on the pty's master.
func startLoginOnPTY(t *testing.T, password string, shell ...string) *Console {
	t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		prereq.Missingf(t, "no pseudo-terminal here: %v", err)
	}
	args := append([]string{"-c", loginScript, "login"}, shell...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = append(os.Environ(), "PXEC_TEST_PASSWORD="+password, "TERM=vt100")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		t.Fatalf("start %s: %v", cmd, err)
	}
	slave.Close()
	c, err := New(master)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		c.Close()
	})
	return c
}

func TestLoginAndRunOnRealTTY(t *testing.T) {
	shells := map[string][]string{"dash": {"/bin/sh"}}
	if bb, err := exec.LookPath("busybox"); err == nil {
		shells["busybox ash"] = []string{bb, "sh"}
	} else {
		// The guest's shell is busybox ash; CI installs busybox-static.
		t.Run("busybox ash", func(t *testing.T) { prereq.Missingf(t, "busybox not in PATH: %v", err) })
	}
	long := strings.Repeat("0123456789", 25)
	tests := []struct {
		cmd    string
		out    string
		status int
	}{
		{"echo hello", "hello\n", 0},
		{`printf 'a\nb'`, "a\nb", 0},
		{"false", "", 1},
		{"f() { return 7; }; f", "", 7},
		{"echo one # a comment must not hide the end marker", "one\n", 0},
		{`echo 'single' "double" "it's"`, "single double it's\n", 0},
		{"echo " + long, long + "\n", 0},
		{"echo PXECB1; echo PXEC", "PXECB1\nPXEC\n", 0},
		{"cd /; pwd", "/\n", 0},
		{"pwd", "/\n", 0},
	}
	for name, shell := range shells {
		t.Run(name, func(t *testing.T) {
			c := startLoginOnPTY(t, "pxec-s3cret", shell...)
			ctx := testContext(t)
			if err := c.Login(ctx, "root", "pxec-s3cret"); err != nil {
				t.Fatal(err)
			}
			for _, tt := range tests {
				out, status, err := c.Run(ctx, tt.cmd)
				if err != nil {
					t.Fatalf("Run(%q): %v", tt.cmd, err)
				}
				if out != tt.out || status != tt.status {
					t.Errorf("Run(%q) = %q, %d; want %q, %d", tt.cmd, out, status, tt.out, tt.status)
				}
			}
			// A syntax error fails the command, not the markers.
			out, status, err := c.Run(ctx, "echo (")
			if err != nil || status != 2 || !strings.Contains(strings.ToLower(out), "syntax error") {
				t.Errorf(`Run("echo (") = %q, %d, %v; want a syntax error with status 2`, out, status, err)
			}
		})
	}
}

func TestLoginIncorrectOnRealTTY(t *testing.T) {
	c := startLoginOnPTY(t, "pxec-s3cret", "/bin/sh")
	err := c.Login(testContext(t), "root", "not-the-password")
	if !errors.Is(err, ErrLoginIncorrect) {
		t.Fatalf("Login = %v, want a Login incorrect error", err)
	}
}
