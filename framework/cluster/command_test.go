package cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

func TestKindErrorsPrintAPasteableCommandAndItsOutput(t *testing.T) {
	inner := errors.New("exit status 125")
	kindErr := fmt.Errorf("failed to create cluster: %w", &kindexec.RunError{
		Command: []string{"docker", "run", "--name", "pxec control-plane"},
		Output:  []byte("docker: Error response from daemon: Conflict.\n"),
		Inner:   inner,
	})
	err := withKindOutput(kindErr)
	var ce *command.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v carries no *command.Error", err)
	}
	for _, want := range []string{"failed to create cluster", "docker run --name 'pxec control-plane'", "Conflict."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, inner) {
		t.Errorf("error does not unwrap to the command's exit status")
	}
}
