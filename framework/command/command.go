package command

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Error is an external command that failed.
type Error struct {
	// Command is the command line, quoted so that it can be pasted into a shell (see Line
	// and LineOf); a pipeline joins its commands' lines with " | ".
	Command string
	// Output is what the command printed, as the caller captured it: standard output
	// followed by standard error for Output.
	Output string
	// Err is why it failed: the exit status, a failure to start, or the end of the context
	// the command ran under.
	Err error
}

func (e *Error) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		out = "(no output)"
	}
	return fmt.Sprintf("command failed: %s: %v\n%s", e.Command, e.Err, out)
}

// Unwrap returns the cause, so errors.Is sees an *exec.ExitError or context.Canceled.
func (e *Error) Unwrap() error { return e.Err }

// safe are the bytes a POSIX shell leaves alone in a word.
const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+:,./@%"

// Quote returns s as one shell word: unchanged when a shell would leave it alone, single-quoted
// otherwise.
func Quote(s string) string {
	if s != "" && strings.Trim(s, safe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Line renders argv (program, then arguments) as a shell line that runs it.
func Line(argv ...string) string {
	words := make([]string, len(argv))
	for i, a := range argv {
		words[i] = Quote(a)
	}
	return strings.Join(words, " ")
}

// LineIn renders argv as a shell line that runs it in dir ("cd DIR && ", unless dir is empty)
// with env (KEY=value entries) added to the shell's environment.
func LineIn(dir string, env []string, argv ...string) string {
	var b strings.Builder
	if dir != "" {
		b.WriteString("cd " + Quote(dir) + " && ")
	}
	for _, e := range env {
		b.WriteString(Quote(e) + " ")
	}
	b.WriteString(Line(argv...))
	return b.String()
}

// LineOf renders cmd as a shell line that reproduces it: LineIn with its directory and the
// environment entries it has that this process lacks (but PWD, which cd sets).
func LineOf(cmd *exec.Cmd) string {
	var added []string
	if cmd.Env != nil {
		inherited := os.Environ()
		for _, e := range cmd.Env {
			if !slices.Contains(inherited, e) && !strings.HasPrefix(e, "PWD=") {
				added = append(added, e)
			}
		}
	}
	return LineIn(cmd.Dir, added, cmd.Args...)
}

// Output runs cmd, which must have no Stdout or Stderr of its own, and returns its standard
// output. When it fails, the error is an *Error with LineOf(cmd) and what it printed on both
// streams; ctx, the context cmd was made with, is named as the cause when it ended first.
func Output(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return stdout.Bytes(), &Error{Command: LineOf(cmd), Output: stdout.String() + stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}
