package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestDownloadModuleReportsTheModuleAndItsTime(t *testing.T) {
	// A module this repository requires, so the module cache has it and no proxy is asked.
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/onsi/ginkgo/v2").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	version := strings.TrimSpace(string(out))
	m, err := DownloadModule(context.Background(), t.TempDir(), "github.com/onsi/ginkgo/v2", version)
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != "github.com/onsi/ginkgo/v2" || m.Version != version || m.Time == "" || !strings.HasPrefix(m.Sum, "h1:") {
		t.Errorf("DownloadModule = %+v", m)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, "go.mod")); err != nil {
		t.Errorf("the module's directory: %v", err)
	}
}

func TestDownloadModuleNamesTheVersionItCouldNotGet(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	t.Setenv("GOFLAGS", "")
	_, err := DownloadModule(context.Background(), t.TempDir(), "example.com/none", "v0.0.1")
	if err == nil || !strings.Contains(err.Error(), "download example.com/none@v0.0.1: ") {
		t.Fatalf("error %v, want it to name example.com/none@v0.0.1", err)
	}
	t.Log(err)
}
