package houserules

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// sourceLine is one line of Go source, with its path relative to the module.
type sourceLine struct {
	path string // relative to the module's root
	n    int
	text string
	code string // the line without its comment
	file string // the whole file
}

// scan calls match on every line of the module's Go files outside skip (folders relative to
// the module's root) and returns the lines it accepted, as "path:line: text".
func scan(t *testing.T, skip []string, match func(sourceLine) bool) []string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..")) // this package is ci/houserules
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			for _, s := range skip {
				if rel == s {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		file := string(b)
		for i, text := range strings.Split(file, "\n") {
			code, _, _ := strings.Cut(text, "//")
			if match(sourceLine{path: rel, n: i + 1, text: text, code: code, file: file}) {
				found = append(found, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(text)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestOnlyTheKVMProbeLooksAtDevKVM keeps framework/kvm the one place that decides whether
// /dev/kvm runs guests: a caller that opened or checked the device itself would start guests
// under a KVM that hangs them, as the payload's QEMU test once did on machines whose /dev/kvm
// opens but cannot run a guest.
func TestOnlyTheKVMProbeLooksAtDevKVM(t *testing.T) {
	found := scan(t, []string{filepath.Join("framework", "kvm"), filepath.Join("ci", "houserules")}, func(l sourceLine) bool {
		return strings.Contains(l.code, `"`+kvm.Device+`"`)
	})
	if len(found) > 0 {
		t.Errorf("these lines look at %s themselves; ask kvm.Probe (or qemu.DetectAccel) instead:\n%s", kvm.Device, strings.Join(found, "\n"))
	}
}

// TestOnlyTheKindLabRunsDockerExec keeps NodeExec (`docker exec` on a kind node) to the kind
// lab's own setup: outside framework/cluster, ci/cluster and the `cluster`-tagged integration
// tests, code that holds a *Cluster must reach nodes through the API (nodeexec.PodRunner), the
// way every vendor's cluster allows.
func TestOnlyTheKindLabRunsDockerExec(t *testing.T) {
	skip := []string{filepath.Join("framework", "cluster"), filepath.Join("ci", "cluster"), filepath.Join("ci", "houserules")}
	found := scan(t, skip, func(l sourceLine) bool {
		return strings.Contains(l.file, `"github.com/pxe-conformance/pxe-conformance/framework/cluster"`) &&
			!strings.HasPrefix(l.file, "//go:build cluster") && strings.Contains(l.code, ".NodeExec(")
	})
	if len(found) > 0 {
		t.Errorf("these lines run docker exec on kind nodes outside the kind lab; use nodeexec.PodRunner:\n%s", strings.Join(found, "\n"))
	}
}
