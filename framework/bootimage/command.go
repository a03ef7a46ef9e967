package bootimage

import (
	"context"
	"os/exec"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// hostCmd describes one external command; env entries are added to the
// inherited environment.
type hostCmd struct {
	dir  string
	env  []string
	name string
	args []string
}

// String renders the command as a shell line that reproduces it.
func (c hostCmd) String() string {
	return command.LineIn(c.dir, c.env, append([]string{c.name}, c.args...)...)
}

func (c hostCmd) exec(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	cmd.Dir = c.dir
	if len(c.env) > 0 {
		cmd.Env = append(cmd.Environ(), c.env...)
	}
	return cmd
}

// run runs the command and returns its stdout; on failure the error is a
// *command.Error carrying stdout and stderr.
func (c hostCmd) run(ctx context.Context) ([]byte, error) {
	return command.Output(ctx, c.exec(ctx))
}
