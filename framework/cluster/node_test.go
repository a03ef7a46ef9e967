package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOnlyTheKindLabRunsDockerExec keeps NodeExec (`docker exec` on a kind node) to the kind
// lab's own setup: outside framework/cluster, ci/cluster and the `cluster`-tagged integration
// tests, code that holds a *Cluster must reach nodes through the API (nodeexec.PodRunner), the
// way every vendor's cluster allows. It reads the source: a file that imports this package
// and calls NodeExec is flagged.
func TestOnlyTheKindLabRunsDockerExec(t *testing.T) {
	// The test runs in framework/cluster, two levels below the module.
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{filepath.Join(root, "framework", "cluster"), filepath.Join(root, "ci", "cluster")}
	var offenders []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			for _, a := range allowed {
				if path == a {
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
		src := string(b)
		if !strings.Contains(src, `"github.com/pxe-conformance/pxe-conformance/framework/cluster"`) ||
			strings.HasPrefix(src, "//go:build cluster") {
			return nil
		}
		for i, line := range strings.Split(src, "\n") {
			code, _, _ := strings.Cut(line, "//")
			if strings.Contains(code, ".NodeExec(") {
				rel, _ := filepath.Rel(root, path)
				offenders = append(offenders, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offenders) > 0 {
		t.Errorf("these lines run docker exec on kind nodes outside the kind lab; use nodeexec.PodRunner:\n%s", strings.Join(offenders, "\n"))
	}
}
