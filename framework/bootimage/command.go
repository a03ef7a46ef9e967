package bootimage

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// CommandError reports a failed external command with the exact command line,
// ready to paste into a shell, and everything it printed.
type CommandError struct {
	// Command is the shell-quoted command line, with its directory and
	// environment overrides.
	Command string
	// Output is the command's stdout followed by its stderr.
	Output string
	// Err is the error from running or waiting for the command.
	Err error
}

func (e *CommandError) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		out = "(no output)"
	}
	return fmt.Sprintf("command failed: %s: %v\n%s", e.Command, e.Err, out)
}

func (e *CommandError) Unwrap() error { return e.Err }

// command describes one external command; env entries are added to the
// inherited environment.
type command struct {
	dir  string
	env  []string
	name string
	args []string
}

// String renders the command as a shell line that reproduces it.
func (c command) String() string {
	var b strings.Builder
	if c.dir != "" {
		b.WriteString("cd " + shellQuote(c.dir) + " && ")
	}
	for _, e := range c.env {
		b.WriteString(shellQuote(e) + " ")
	}
	b.WriteString(shellQuote(c.name))
	for _, a := range c.args {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

func (c command) exec(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	cmd.Dir = c.dir
	if len(c.env) > 0 {
		cmd.Env = append(cmd.Environ(), c.env...)
	}
	return cmd
}

// run runs the command and returns its stdout; on failure the error is a
// *CommandError carrying stdout and stderr.
func (c command) run(ctx context.Context) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := c.exec(ctx)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return stdout.Bytes(), &CommandError{Command: c.String(), Output: stdout.String() + stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// shellQuote quotes s for a POSIX shell unless it needs no quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+:,./@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
