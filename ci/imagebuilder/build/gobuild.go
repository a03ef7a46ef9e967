package build

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// GoBuild is a set of commands built from Go modules in a wrapper module under the cache,
// statically (CGO_ENABLED=0), so the binaries run on any root filesystem. It is how every image
// takes a program of another module (Kubernetes, etcd, CoreDNS, crictl, the CNI plugins,
// Multus): the wrapper requires the module, repeats the replace directives that only work inside
// it, and `go mod tidy` selects exactly the versions the module's own go.mod does when it
// requires nothing else. Programs of this repository are built by BuildLocal; KubeVirt, with cgo,
// its patch and its stand-in modules, by its own package.
type GoBuild struct {
	// Name is the wrapper module's directory under src/ and the prefix of its output under bin/.
	Name string
	// Require maps module path to version.
	Require map[string]string
	// Replace maps module path to its replacement, "path version".
	Replace map[string]string
	// Files are Go source files of the wrapper module itself, by path under it: a main package
	// of our own (a Bins entry whose package is under WrapperModule(Name)).
	Files map[string]string
	// Bins maps each output binary's name to the package it is built from.
	Bins map[string]string
	// Ldflags are passed to every go build.
	Ldflags string
}

// WrapperModule is the module path of the wrapper module called name.
func WrapperModule(name string) string { return "pxec.local/build/" + name }

// GoMod renders the wrapper module: the requirements, the replacements, and a tool directive
// per package of another module so `go mod tidy` keeps what the builds need (the wrapper's own
// packages need none: tidy reads their imports).
func (g GoBuild) GoMod() string {
	var s strings.Builder
	fmt.Fprintf(&s, "module %s\n\ngo 1.24.0\n\nrequire (\n", WrapperModule(g.Name))
	for _, m := range SortedKeys(g.Require) {
		fmt.Fprintf(&s, "\t%s %s\n", m, g.Require[m])
	}
	s.WriteString(")\n")
	if len(g.Replace) > 0 {
		s.WriteString("\nreplace (\n")
		for _, m := range SortedKeys(g.Replace) {
			fmt.Fprintf(&s, "\t%s => %s\n", m, g.Replace[m])
		}
		s.WriteString(")\n")
	}
	s.WriteString("\n")
	seen := map[string]bool{}
	for _, bin := range SortedKeys(g.Bins) {
		if p := g.Bins[bin]; !seen[p] && !strings.HasPrefix(p, WrapperModule(g.Name)+"/") {
			seen[p] = true
			fmt.Fprintf(&s, "tool %s\n", p)
		}
	}
	return s.String()
}

// Inputs is the cache key of the build: the wrapper module and its files, the binaries, flags
// and Go version.
func (g GoBuild) Inputs(goVersion string) string {
	var bins []string
	for _, b := range SortedKeys(g.Bins) {
		bins = append(bins, b+"="+g.Bins[b])
	}
	parts := []string{g.GoMod(), strings.Join(bins, ","), g.Ldflags, "CGO_ENABLED=0 -trimpath", goVersion}
	for _, f := range SortedKeys(g.Files) {
		parts = append(parts, f, g.Files[f])
	}
	return Hash(parts...)
}

// outputLocks serializes builds into the same output folder: targets building side by side may
// ask for the same programs (the node and the cni-plugins image both take the CNI plugins).
var outputLocks sync.Map // output folder -> *sync.Mutex

// Build puts the binaries into bin/<Name>-<Inputs> under the cache, or finds them there, and
// returns that folder. Downloading and tidying the modules is a step of its own; compiling waits
// for o.CPU.
func (g GoBuild) Build(ctx context.Context, o Options) (string, error) {
	cache := o.Cache
	if cache == "" {
		cache = CacheDir()
	}
	goVersion, err := GoVersion(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "bin", g.Name+"-"+g.Inputs(goVersion))
	lock, _ := outputLocks.LoadOrStore(out, &sync.Mutex{})
	lock.(*sync.Mutex).Lock()
	defer lock.(*sync.Mutex).Unlock()

	step := "build " + g.Name
	if _, err := os.Stat(filepath.Join(out, ".complete")); err == nil {
		o.Progress.Skip(step, "up to date in "+out)
		return out, nil
	}
	src := filepath.Join(cache, "src", g.Name)
	if err := o.Progress.Step(step+": modules", func() error {
		if err := g.writeFiles(src); err != nil {
			return err
		}
		return g.tidy(ctx, o, src)
	}); err != nil {
		return out, err
	}
	err = o.CPU.Step(ctx, o.Progress, step, func() error {
		tmp := out + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		for _, argv := range g.buildCommands(tmp) {
			if err := Run(ctx, o.Log, goCommand(ctx, src, argv...)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(g.GoMod()), 0o644); err != nil {
			return err
		}
		if err := os.RemoveAll(out); err != nil {
			return err
		}
		return os.Rename(tmp, out)
	})
	return out, err
}

// goCommand is a go command for static binaries that ignores any go.work and the caller's
// module, so wrapper modules under the cache build the same way wherever the builder runs.
func goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false")
	return cmd
}

// writeFiles replaces the wrapper module's own source files under src with g.Files.
func (g GoBuild) writeFiles(src string) error {
	for _, f := range SortedKeys(g.Files) {
		p := filepath.Join(src, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(g.Files[f]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// buildCommands are the go command lines that put the binaries into dir: one for all of them
// when each is named after its package (so compiling and linking overlap), else one per binary.
func (g GoBuild) buildCommands(dir string) [][]string {
	flags := []string{"build", "-trimpath", "-ldflags", g.Ldflags, "-o"}
	var pkgs []string
	for _, bin := range SortedKeys(g.Bins) {
		if path.Base(g.Bins[bin]) != bin {
			var out [][]string
			for _, bin := range SortedKeys(g.Bins) {
				out = append(out, append(append([]string(nil), flags...), filepath.Join(dir, bin), g.Bins[bin]))
			}
			return out
		}
		pkgs = append(pkgs, g.Bins[bin])
	}
	return [][]string{append(append(flags, dir+string(filepath.Separator)), pkgs...)}
}

// tidy writes the wrapper's go.mod and runs `go mod tidy` unless the same go.mod, with the
// same files of its own, was tidied before: without it the build fails on go.sum entries the
// replaced modules need.
func (g GoBuild) tidy(ctx context.Context, o Options, src string) error {
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	gomod := g.GoMod()
	key := gomod
	for _, f := range SortedKeys(g.Files) {
		key += "\n// " + f + " " + Hash(g.Files[f])
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
	if err := Run(ctx, o.Log, goCommand(ctx, src, "mod", "tidy")); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(key), 0o644)
}

// BuildLocal builds main package pkg of this repository (repo is its checkout) statically into
// the file out, its compiling waiting for o.CPU.
func BuildLocal(ctx context.Context, o Options, repo, pkg, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if err := o.CPU.Do(ctx, o.Progress, "go build "+pkg, func() error { return Run(ctx, o.Log, cmd) }); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	return nil
}

var goVersion struct {
	once    sync.Once
	version string
	err     error
}

// GoVersion is the go command's version (go env GOVERSION), part of every build's cache key.
func GoVersion(ctx context.Context) (string, error) {
	goVersion.once.Do(func() {
		out, err := Output(ctx, exec.CommandContext(ctx, "go", "env", "GOVERSION"))
		goVersion.version, goVersion.err = strings.TrimSpace(string(out)), err
	})
	return goVersion.version, goVersion.err
}

// SortedKeys returns m's keys in order.
func SortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// CopyFile copies src to dst with mode, making dst's folder; an existing dst is replaced and
// gets mode too (OpenFile keeps an existing file's mode and applies the umask to a new one).
func CopyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}
