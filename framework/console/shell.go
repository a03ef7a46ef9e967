package console

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrLoginIncorrect is wrapped by Login's error when the guest refused the
// user name or password.
var ErrLoginIncorrect = errors.New("login incorrect")

var (
	// The prompts tolerate whole lines printed into them: a kernel or
	// daemon message can land between two characters of a prompt that the
	// tty is still draining.
	loginPrompt    = interleaved("login:")
	passwordPrompt = regexp.MustCompile(`(?i)` + interleaved("password:").String())
	loginIncorrect = regexp.MustCompile(`Login incorrect`)
	// shellPrompt matches only a prompt at the very end of what arrived:
	// a shell waiting for input right now, not one left in the buffer.
	shellPrompt = regexp.MustCompile(`[#$] $`)
)

// loginPromptName stands for loginPrompt's long expression in errors.
const loginPromptName = `"login:"`

// interleaved returns a pattern for s that allows complete foreign lines
// between its characters.
func interleaved(s string) *regexp.Regexp {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteString(`(?:[^\n]*\n)?`)
		}
		b.WriteString(regexp.QuoteMeta(string(r)))
	}
	return regexp.MustCompile(b.String())
}

// Login logs user in on the console's getty and returns once a shell ran a
// command, so the caller can Run at once.
//
// Output that was already on the console is ignored: Login presses Enter
// and waits for a fresh "login:" prompt. The prompt and the "Password:"
// prompt are matched anywhere in a line, because daemons and the kernel
// print over them. Success is proved by a marker the shell prints, never
// by a "#" prompt, which may be stale.
func (c *Console) Login(ctx context.Context, user, password string) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("log in to console as %s: %s: %w", user, step, err)
	}
	c.Discard()
	if err := c.awaitLoginPrompt(ctx); err != nil {
		return fail("wait for login prompt", err)
	}
	if err := c.Send(ctx, user+c.newline); err != nil {
		return fail("type user name", err)
	}
	if _, err := c.Expect(ctx, passwordPrompt, Named(`"Password:"`)); err != nil {
		return fail("wait for password prompt", err)
	}
	if err := c.Send(ctx, password+c.newline); err != nil {
		return fail("type password", err)
	}

	// Type the probe ahead: the shell reads it as soon as it starts. If the
	// shell flushed its input instead, it shows a prompt, and the probe is
	// typed again; a probe that runs twice does no harm.
	id := c.nextMarker()
	probe := `echo PXEC""L` + id + c.newline
	done := regexp.MustCompile(`PXECL` + id + `\n`)
	if err := c.Send(ctx, probe); err != nil {
		return fail("type shell probe", err)
	}
	for {
		i, m, err := c.ExpectAny(ctx, done, loginIncorrect, shellPrompt)
		if err != nil {
			return fail("wait for shell", err)
		}
		switch i {
		case 0:
			return nil
		case 1:
			return fail("wait for shell", &ExpectError{
				Want:  "shell probe output " + slashed(done),
				Fail:  slashed(loginIncorrect),
				Match: m[0],
				Tail:  c.tail(),
				Err:   ErrLoginIncorrect,
			})
		}
		if err := c.Send(ctx, probe); err != nil {
			return fail("type shell probe", err)
		}
	}
}

// awaitLoginPrompt presses Enter until a fresh login prompt shows. Enter
// is pressed again after every reprompt interval without a prompt: the
// getty may not have opened the tty when the first one arrived, or a prompt
// may have been garbled beyond recognition. At a login prompt an empty
// line only makes the getty ask again.
func (c *Console) awaitLoginPrompt(ctx context.Context) error {
	for {
		if err := c.Send(ctx, c.newline); err != nil {
			return fmt.Errorf("press enter: %w", err)
		}
		attempt, cancel := context.WithTimeout(ctx, c.reprompt)
		_, err := c.Expect(attempt, loginPrompt, Named(loginPromptName))
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			// Report the caller's deadline, not the attempt's.
			return &ExpectError{Want: loginPromptName, Tail: c.tail(), Err: ctx.Err()}
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
	}
}

// Run runs cmd in the console's logged-in shell and returns what it
// printed (cleaned text, CRs removed, trailing newline kept) and its exit
// status.
//
// The output is anchored on per-call markers that the shell prints around
// the command. Their typed form contains an empty string ("PXEC""B1"), so
// the terminal's echo of the command line never matches. cmd runs through
// "command eval", so a comment or a trailing "&" in cmd cannot swallow the
// end marker, and a syntax error fails cmd with status 2 instead of
// aborting the whole line (as a plain eval, a special built-in, would);
// cd and variables persist in the shell. Lines the kernel or a daemon
// prints while cmd runs end up in the output: the console is one shared
// screen.
func (c *Console) Run(ctx context.Context, cmd string) (string, int, error) {
	id := c.nextMarker()
	line := fmt.Sprintf(`echo PXEC""B%s; command eval %s; echo PXEC""E%s:$?`, id, shellQuote(cmd), id)
	re := regexp.MustCompile(`PXECB` + id + `\n((?s:.*?))PXECE` + id + `:(\d+)\n`)
	if err := c.Send(ctx, line+c.newline); err != nil {
		return "", -1, fmt.Errorf("run %q on console: %w", cmd, err)
	}
	m, err := c.Expect(ctx, re)
	if err != nil {
		return "", -1, fmt.Errorf("run %q on console: %w", cmd, err)
	}
	status, err := strconv.Atoi(m[2])
	if err != nil {
		return m[1], -1, fmt.Errorf("run %q on console: parse exit status %q: %w", cmd, m[2], err)
	}
	return m[1], status, nil
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
