package network

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// modulePath is this repository's Go module.
const modulePath = "github.com/pxe-conformance/pxe-conformance"

// repoRoot finds the repository root: the nearest directory, from the working directory up,
// whose go.mod declares our module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			found := false
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "module "+modulePath {
					found = true
					break
				}
			}
			f.Close()
			if found {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository root: no go.mod of " + modulePath + " above the working directory; run the builder from the repository")
		}
		dir = parent
	}
}

// goEnv is the environment of every go command here: static binaries, and no go.work.
func goEnv(extra ...string) []string {
	return append(os.Environ(), append([]string{"GOWORK=off", "CGO_ENABLED=0"}, extra...)...)
}

// localHash hashes everything a package of this repository is built from: the source files
// (Go and embedded) of every package of our module it imports, itself included, and the
// version of every other module it imports. Test files and unrelated go.mod changes do not
// count, so they cause no rebuild.
func (b *builder) localHash(ctx context.Context, pkg string) (string, error) {
	return b.sourceHash(ctx, pkg)
}

// testHash is localHash for the test binary of pkg built with tags (go test -c -tags): go
// list -test adds pkg's test variant, whose files include its tests.
func (b *builder) testHash(ctx context.Context, pkg, tags string) (string, error) {
	return b.sourceHash(ctx, pkg, "-test", "-tags", tags)
}

// sourceHash is localHash with more go list flags.
func (b *builder) sourceHash(ctx context.Context, pkg string, listFlags ...string) (string, error) {
	const format = `{{with .Module}}{{if .Main}}src {{$.Dir}}{{range $.GoFiles}} {{.}}{{end}}{{range $.EmbedFiles}} {{.}}{{end}}` +
		`{{else}}mod {{.Path}}@{{.Version}}{{with .Replace}}=>{{.Path}}@{{.Version}}{{end}}{{end}}{{end}}`
	args := append(append([]string{"list", "-deps"}, listFlags...), "-f", format, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.repo
	cmd.Env = goEnv()
	out, err := build.Output(ctx, cmd)
	if err != nil {
		return "", fmt.Errorf("list the packages %s is built from: %w", pkg, err)
	}
	lines := strings.Split(string(bytes.TrimSpace(out)), "\n")
	sort.Strings(lines)
	parts := []string{pkg}
	seen := map[string]bool{}
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) < 2 || seen[line] {
			continue
		}
		seen[line] = true
		if fields[0] == "mod" {
			parts = append(parts, line)
			continue
		}
		dir := fields[1]
		rel, _ := filepath.Rel(b.repo, dir)
		for _, f := range fields[2:] {
			if filepath.IsAbs(f) {
				continue // a test binary's generated main, made from the files hashed here
			}
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return "", err
			}
			parts = append(parts, filepath.Join(rel, f), string(data))
		}
	}
	return build.Hash(parts...), nil
}
