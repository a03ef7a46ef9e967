package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// goCommand is a go command that ignores any go.work and the caller's module, so wrapper
// modules under the cache build the same way wherever the builder runs.
func (b *builder) goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false")
	return cmd
}

// goBuild is a set of commands built from Go modules in a wrapper module under the cache,
// statically (CGO_ENABLED=0), so the binaries run on any root filesystem.
type goBuild struct {
	// name is the wrapper module's directory under src/ and the prefix of its output under bin/.
	name string
	// require maps module path to version.
	require map[string]string
	// replace maps module path to its replacement, "path version".
	replace map[string]string
	// files are Go source files of the wrapper module itself, by path under it: a main package
	// of our own (a bin whose package is under wrapperModule(name)).
	files map[string]string
	// bins maps each output binary's name to the package it is built from.
	bins map[string]string
	// ldflags are passed to every go build.
	ldflags string
}

// wrapperModule is the module path of the wrapper module called name.
func wrapperModule(name string) string { return "pxec.local/build/" + name }

// wrapperGoMod renders the wrapper module: the requirements, the replacements, and a tool
// directive per package of another module so `go mod tidy` keeps what the builds need (the
// wrapper's own packages need none: tidy reads their imports).
func (g goBuild) wrapperGoMod() string {
	var s strings.Builder
	fmt.Fprintf(&s, "module %s\n\ngo 1.24.0\n\nrequire (\n", wrapperModule(g.name))
	for _, m := range sortedKeys(g.require) {
		fmt.Fprintf(&s, "\t%s %s\n", m, g.require[m])
	}
	s.WriteString(")\n")
	if len(g.replace) > 0 {
		s.WriteString("\nreplace (\n")
		for _, m := range sortedKeys(g.replace) {
			fmt.Fprintf(&s, "\t%s => %s\n", m, g.replace[m])
		}
		s.WriteString(")\n")
	}
	s.WriteString("\n")
	seen := map[string]bool{}
	for _, bin := range sortedKeys(g.bins) {
		if p := g.bins[bin]; !seen[p] && !strings.HasPrefix(p, wrapperModule(g.name)+"/") {
			seen[p] = true
			fmt.Fprintf(&s, "tool %s\n", p)
		}
	}
	return s.String()
}

// inputs is the cache key of the build: the wrapper module and its files, the binaries, flags
// and Go version.
func (g goBuild) inputs(goVersion string) string {
	var bins []string
	for _, b := range sortedKeys(g.bins) {
		bins = append(bins, b+"="+g.bins[b])
	}
	parts := []string{g.wrapperGoMod(), strings.Join(bins, ","), g.ldflags, "CGO_ENABLED=0 -trimpath", goVersion}
	for _, f := range sortedKeys(g.files) {
		parts = append(parts, f, g.files[f])
	}
	return build.Hash(parts...)
}

// writeFiles replaces the wrapper module's own source files under src with g.files.
func (g goBuild) writeFiles(src string) error {
	for _, f := range sortedKeys(g.files) {
		p := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.files[f]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// run builds the binaries into bin/<name>-<inputs> under the cache, or finds them there, and
// returns that directory.
func (b *builder) run(ctx context.Context, g goBuild) (string, error) {
	out := filepath.Join(b.cache, "bin", g.name+"-"+g.inputs(b.goVersion))
	step := "build " + g.name
	if _, err := os.Stat(filepath.Join(out, ".complete")); err == nil {
		b.progress.Skip(step, "up to date in "+out)
		return out, nil
	}
	src := filepath.Join(b.cache, "src", g.name)
	if err := b.progress.Step(step+": modules", func() error {
		if err := g.writeFiles(src); err != nil {
			return err
		}
		return b.tidy(ctx, src, g)
	}); err != nil {
		return out, err
	}
	err := b.o.CPU.Step(ctx, b.progress, step, func() error {
		tmp := out + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		for _, argv := range g.buildCommands(tmp) {
			if err := build.Run(ctx, b.log, b.goCommand(ctx, src, argv...)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(g.wrapperGoMod()), 0o644); err != nil {
			return err
		}
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	})
	return out, err
}

// buildCommands are the go command lines that put the binaries into dir: one for all of them
// when each is named after its package (so compiling and linking overlap), else one per binary.
func (g goBuild) buildCommands(dir string) [][]string {
	flags := []string{"build", "-trimpath", "-ldflags", g.ldflags, "-o"}
	var pkgs []string
	for _, bin := range sortedKeys(g.bins) {
		if path.Base(g.bins[bin]) != bin {
			var out [][]string
			for _, bin := range sortedKeys(g.bins) {
				out = append(out, append(append([]string(nil), flags...), filepath.Join(dir, bin), g.bins[bin]))
			}
			return out
		}
		pkgs = append(pkgs, g.bins[bin])
	}
	return [][]string{append(append(flags, dir+string(filepath.Separator)), pkgs...)}
}

// tidy writes the wrapper's go.mod and runs `go mod tidy` unless the same go.mod, with the
// same files of its own, was tidied before: without it the build fails on go.sum entries the
// replaced modules need.
func (b *builder) tidy(ctx context.Context, src string, g goBuild) error {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	gomod := g.wrapperGoMod()
	key := gomod
	for _, f := range sortedKeys(g.files) {
		key += "\n// " + f + " " + build.Hash(g.files[f])
	}
	stamp := filepath.Join(src, ".tidied")
	if old, err := os.ReadFile(stamp); err == nil && string(old) == key {
		if _, err := os.Stat(filepath.Join(src, "go.sum")); err == nil {
			return nil
		}
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if err := build.Run(ctx, b.log, b.goCommand(ctx, src, "mod", "tidy")); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(key), 0o644)
}

// buildRepoCommand builds a command of this repository (fixtures/...) statically into dir.
func (b *builder) buildRepoCommand(ctx context.Context, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = b.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(ctx, b.log, cmd); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fileHash is the SHA-256 of a file's content, for image input hashes.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
