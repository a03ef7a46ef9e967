package build

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Run runs cmd, streaming its output to log (when not nil) and returning a *command.Error with
// the command line and the last 8 KiB of output when it fails.
func Run(ctx context.Context, log io.Writer, cmd *exec.Cmd) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	tail := &tailBuffer{max: 8 << 10}
	var out io.Writer = tail
	if log != nil {
		out = io.MultiWriter(tail, log)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	if err := startAndWait(ctx, cmd); err != nil {
		return &command.Error{Command: command.LineOf(cmd), Output: tail.String(), Err: err}
	}
	return nil
}

// Output runs cmd and returns its standard output; failures carry standard error.
func Output(ctx context.Context, cmd *exec.Cmd) ([]byte, error) {
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if err := startAndWait(ctx, cmd); err != nil {
		return stdout.Bytes(), &command.Error{Command: command.LineOf(cmd), Output: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// startAndWait runs cmd and, when ctx ends first, sends SIGINT and then SIGKILL after 10 s, so
// builds interrupted with Ctrl-C stop their children, and let them clean up (a `go build`
// killed at once leaves its work folder behind), instead of leaving them behind.
//
// A go command gets a GOTMPDIR of its own, removed when it ends: `go build` ended by Ctrl-C
// leaves its work folder (the half-linked binary) behind (seen with make interrupt).
func startAndWait(ctx context.Context, cmd *exec.Cmd) error {
	if filepath.Base(cmd.Path) == "go" {
		tmp, err := os.MkdirTemp("", "pxec-go-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, "GOTMPDIR="+tmp)
	}
	if cmd.Cancel != nil {
		// Made with exec.CommandContext, whose default would kill it at once when ctx ends.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return ctx.Err()
	}
}
