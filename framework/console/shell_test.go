package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeCmd is a canned command for fakeGuest's shell.
type fakeCmd struct {
	out    string
	status int
	hang   bool // never finish; the guest only echoed the command line
	close  bool // drop the console stream, as a rebooting guest's websocket does
}

// fakeGuest plays a getty, login and shell on the guest end of a serial
// line the way a tty shows them: input is echoed, "\n" goes out as "\r\n",
// and prompts carry colour escapes.
type fakeGuest struct {
	t        *testing.T
	g        guestSide
	r        *bufio.Reader
	password string
	commands map[string]fakeCmd

	// splitLoginPrompt prints a kernel line into the middle of every
	// login prompt.
	splitLoginPrompt bool
	// garbledPrompts is how many login prompts lose their tail.
	garbledPrompts int
	// flushOnShellStart drops the input typed ahead of the shell, as a
	// shell that flushes its tty on start does.
	flushOnShellStart bool
	// daemonInShellPrompt prints a daemon line into every shell prompt.
	daemonInShellPrompt bool

	mu       sync.Mutex
	prompts  int      // login prompts printed
	received []string // shell command lines received
	started  chan string
}

// start runs the guest until the console side closes.
func (f *fakeGuest) start() {
	f.r = bufio.NewReader(f.g.in)
	f.started = make(chan string, 16)
	go f.run()
}

func (f *fakeGuest) print(s string) bool {
	_, err := f.g.out.Write([]byte(s))
	return err == nil
}

// readLine reads one input line, echoing it if echo is set.
func (f *fakeGuest) readLine(echo bool) (string, bool) {
	line, err := f.r.ReadString('\n')
	if err != nil {
		return "", false
	}
	line = strings.TrimRight(line, "\r\n")
	if echo && !f.print(line+"\r\n") {
		return "", false
	}
	return line, true
}

func (f *fakeGuest) loginPrompt() bool {
	f.mu.Lock()
	f.prompts++
	garble := f.garbledPrompts > 0
	if garble {
		f.garbledPrompts--
	}
	f.mu.Unlock()
	switch {
	case garble:
		return f.print("\x1b[0mpxec-guest lo\r\n")
	case f.splitLoginPrompt:
		return f.print("\x1b[0mpxec-guest lo[    7.104512] random: crng init done\r\ngin: ")
	default:
		return f.print("\x1b[0mpxec-guest login: ")
	}
}

func (f *fakeGuest) run() {
	defer f.g.out.Close()
	if !f.print("\x1bc\x1b[2J\x1b[1;1HWelcome to pxec-guest\r\n\r\n") || !f.loginPrompt() {
		return
	}
	for {
		user, ok := f.readLine(true)
		if !ok {
			return
		}
		if user == "" {
			if !f.loginPrompt() {
				return
			}
			continue
		}
		if !f.print("Password: ") {
			return
		}
		pw, ok := f.readLine(false)
		if !ok || !f.print("\r\n") {
			return
		}
		if user == "root" && pw == f.password {
			f.shell()
			return
		}
		if !f.print("Login incorrect\r\n") || !f.loginPrompt() {
			return
		}
	}
}

var (
	fakeProbe = regexp.MustCompile(`^echo PXEC""L(\w+)$`)
	fakeRun   = regexp.MustCompile(`^echo PXEC""B(\w+); command eval '(.*)'; echo PXEC""E(\w+):\$\?$`)
)

func (f *fakeGuest) shell() {
	if !f.print("\x1b[1mpxec conformance guest\x1b[0m\r\n") {
		return
	}
	if f.flushOnShellStart {
		if _, ok := f.readLine(false); !ok {
			return
		}
	}
	for {
		prompt := "\x1b[1;32mpxec-guest:~\x1b[0m# "
		if f.daemonInShellPrompt {
			prompt = "\x1b[1;32mpxec-guest:~\r\n[    9.200001] udhcpc: lease of 10.0.2.2 obtained\r\n\x1b[0m# "
		}
		if !f.print(prompt) {
			return
		}
		line, ok := f.readLine(true)
		if !ok {
			return
		}
		f.mu.Lock()
		f.received = append(f.received, line)
		f.mu.Unlock()
		if m := fakeProbe.FindStringSubmatch(line); m != nil {
			if !f.print("PXECL" + m[1] + "\r\n") {
				return
			}
			continue
		}
		m := fakeRun.FindStringSubmatch(line)
		if m == nil {
			if !f.print("sh: " + line + ": not found\r\n") {
				return
			}
			continue
		}
		cmd := strings.ReplaceAll(m[2], `'\''`, `'`)
		f.started <- cmd
		c, ok := f.commands[cmd]
		if !ok {
			c = fakeCmd{out: "sh: " + cmd + ": not found\n", status: 127}
		}
		switch {
		case c.close:
			return
		case c.hang:
			// Wait for the console to go away.
			for {
				if _, ok := f.readLine(true); !ok {
					return
				}
			}
		}
		out := "PXECB" + m[1] + "\r\n" + strings.ReplaceAll(c.out, "\n", "\r\n") +
			fmt.Sprintf("PXECE%s:%d\r\n", m[3], c.status)
		if !f.print(out) {
			return
		}
	}
}

// newFakeGuest starts f on a fresh Console.
func newFakeGuest(t *testing.T, f *fakeGuest, opts ...Option) *Console {
	t.Helper()
	c, g := newTestConsole(t, opts...)
	f.t, f.g = t, g
	if f.password == "" {
		f.password = "pxec-s3cret"
	}
	f.start()
	return c
}

var guestCommands = map[string]fakeCmd{
	"ip -o link show eth1": {out: "3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop qlen 1000\\    link/ether de:00:00:00:00:de brd ff:ff:ff:ff:ff:ff\n"},
	"false":                {status: 1},
	"cat /nonexistent":     {out: "cat: can't open '/nonexistent': No such file or directory\n", status: 1},
	"printf 'no newline'":  {out: "no newline"},
	"dmesg -n 1; echo ok":  {out: "ok\n"},
	"ip -o addr show eth0": {out: "2: eth0    inet 10.0.2.2/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n[   12.5] random: crng init done\n"},
}

func TestLoginAndRunOnFakeGuest(t *testing.T) {
	f := &fakeGuest{commands: guestCommands, splitLoginPrompt: true, daemonInShellPrompt: true}
	c := newFakeGuest(t, f)
	ctx := testContext(t)
	if err := c.Login(ctx, "root", f.password); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cmd    string
		out    string
		status int
	}{
		{"ip -o link show eth1", "3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop qlen 1000\\    link/ether de:00:00:00:00:de brd ff:ff:ff:ff:ff:ff\n", 0},
		{"false", "", 1},
		{"cat /nonexistent", "cat: can't open '/nonexistent': No such file or directory\n", 1},
		{"printf 'no newline'", "no newline", 0},
		{"dmesg -n 1; echo ok", "ok\n", 0},
		// The console is one screen: a kernel line printed meanwhile is output.
		{"ip -o addr show eth0", "2: eth0    inet 10.0.2.2/24 brd 10.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n[   12.5] random: crng init done\n", 0},
		{"reboot-now", "sh: reboot-now: not found\n", 127},
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
}

func TestLoginIgnoresStalePromptAndPressesEnter(t *testing.T) {
	f := &fakeGuest{}
	c := newFakeGuest(t, f)
	ctx := testContext(t)
	// Let the getty's first prompt arrive: Login must not type into it
	// blindly but provoke a fresh one.
	if _, err := c.Expect(ctx, loginPrompt); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, "root", f.password); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prompts < 2 {
		t.Errorf("guest printed %d login prompts, want a fresh one after Enter", f.prompts)
	}
}

func TestLoginPressesEnterAgainWhenPromptIsGarbled(t *testing.T) {
	// The getty's first prompt and its answer to the first Enter are cut
	// short; only pressing Enter again brings a usable prompt.
	f := &fakeGuest{garbledPrompts: 2}
	c := newFakeGuest(t, f, WithReprompt(20*time.Millisecond))
	if err := c.Login(testContext(t), "root", f.password); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prompts < 3 {
		t.Errorf("guest printed %d login prompts, want at least 3", f.prompts)
	}
}

func TestLoginRetypesProbeWhenShellFlushedInput(t *testing.T) {
	f := &fakeGuest{flushOnShellStart: true}
	c := newFakeGuest(t, f)
	if err := c.Login(testContext(t), "root", f.password); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.received) != 1 || !fakeProbe.MatchString(f.received[0]) {
		t.Errorf("shell received %q, want exactly one retyped probe", f.received)
	}
}

func TestLoginReportsLoginIncorrect(t *testing.T) {
	f := &fakeGuest{}
	c := newFakeGuest(t, f)
	err := c.Login(testContext(t), "root", "wrong-password")
	if !errors.Is(err, ErrLoginIncorrect) {
		t.Fatalf("Login = %v, want ErrLoginIncorrect", err)
	}
	for _, want := range []string{"log in to console as root", `"Login incorrect"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error repeats the password:\n%s", err)
	}
}

func TestRunReturnsAtOnceWhenStreamCloses(t *testing.T) {
	f := &fakeGuest{commands: map[string]fakeCmd{"reboot": {close: true}}}
	c := newFakeGuest(t, f)
	ctx := testContext(t)
	if err := c.Login(ctx, "root", f.password); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Run(ctx, "reboot")
	if !errors.Is(err, ErrStreamEnded) {
		t.Fatalf("Run = %v, want ErrStreamEnded", err)
	}
	if !strings.Contains(err.Error(), `run "reboot" on console`) {
		t.Errorf("error does not name the command: %v", err)
	}
}

func TestRunTimeoutNamesCommandAndShowsEcho(t *testing.T) {
	// The guest echoes the command line but never runs it: the echo alone
	// must not satisfy Run.
	f := &fakeGuest{commands: map[string]fakeCmd{"sleep 1000": {hang: true}}}
	c := newFakeGuest(t, f)
	ctx := testContext(t)
	if err := c.Login(ctx, "root", f.password); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	sent := c.sends.Load()
	go func() {
		<-f.started
		// Cancel only once Run's write has landed, so the cancel hits the wait for the
		// markers, not the write.
		for c.sends.Load() == sent {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	out, status, err := c.Run(runCtx, "sleep 1000")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %q, %d, %v; want context.Canceled", out, status, err)
	}
	for _, want := range []string{`run "sleep 1000" on console`, "context canceled", "/PXECB", `| pxec-guest:~# echo PXEC""B`, `command eval 'sleep 1000'`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%s", want, err)
		}
	}
}

func TestRunMarkersDifferPerCall(t *testing.T) {
	f := &fakeGuest{commands: guestCommands}
	c := newFakeGuest(t, f)
	ctx := testContext(t)
	if err := c.Login(ctx, "root", f.password); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := c.Run(ctx, "false"); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, line := range f.received {
		if m := fakeRun.FindStringSubmatch(line); m != nil {
			if seen[m[1]] {
				t.Errorf("marker %q used twice", m[1])
			}
			seen[m[1]] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("saw %d distinct run markers, want 3", len(seen))
	}
}

func TestShellQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "a'b'c", `"$HOME" \n`, "'"} {
		q := shellQuote(s)
		if got := strings.ReplaceAll(q[1:len(q)-1], `'\''`, `'`); got != s {
			t.Errorf("shellQuote(%q) = %s, unquotes to %q", s, q, got)
		}
	}
}
