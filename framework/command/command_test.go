package command

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestLineQuotesOnlyWhatTheShellWouldChange(t *testing.T) {
	cases := []struct {
		argv []string
		want string
	}{
		{[]string{"ip", "link", "add", "name", "br1"}, "ip link add name br1"},
		{[]string{"sh", "-c", "echo $HOME; true"}, "sh -c 'echo $HOME; true'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"printf", ""}, "printf ''"},
		{[]string{"docker", "image", "inspect", "--format", "{{.Id}}", "pxec.local/x:1"}, "docker image inspect --format '{{.Id}}' pxec.local/x:1"},
	}
	for _, tc := range cases {
		if got := Line(tc.argv...); got != tc.want {
			t.Errorf("Line(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

// TestLineRunsTheSameCommandInAShell pastes Line's output into sh and checks the words arrive
// unchanged.
func TestLineRunsTheSameCommandInAShell(t *testing.T) {
	argv := []string{"printf", "%s|", "a b", "it's", "$HOME", "`x`", "", "*"}
	out, err := exec.Command("sh", "-c", Line(argv...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "a b|it's|$HOME|`x`||*|"; string(out) != want {
		t.Errorf("shell got %q, want %q", out, want)
	}
}

func TestOutputErrorCarriesPasteableLineAndOutput(t *testing.T) {
	ctx := context.Background()
	cmd := exec.CommandContext(ctx, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	cmd.Dir = "/"
	cmd.Env = append(cmd.Environ(), "PXEC_TEST=a b")
	out, err := Output(ctx, cmd)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not an *Error", err)
	}
	want := "cd / && 'PXEC_TEST=a b' sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'"
	if ce.Command != want {
		t.Errorf("command %s, want %s", ce.Command, want)
	}
	for _, w := range []string{"command failed: " + want, "exit status 3", "to-stdout", "to-stderr"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
		t.Errorf("error does not unwrap to the exit status: %v", err)
	}
	if string(out) != "to-stdout\n" {
		t.Errorf("stdout %q", out)
	}
}

func TestOutputNamesTheEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Output(ctx, exec.CommandContext(ctx, "true"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not name the cancelled context", err)
	}
	if !strings.Contains(err.Error(), "(no output)") {
		t.Errorf("error %q does not say the command printed nothing", err)
	}
}
