package kubevirt

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvfixtures "github.com/pxe-conformance/pxe-conformance/fixtures/kubevirt"
)

// source is the pinned KubeVirt module as the Go module cache holds it (read-only).
type source struct {
	Dir    string // module root
	GoMod  []byte // the module's own go.mod
	Commit string // git commit the proxy recorded for the version, "" when unknown
	Time   string // the version's commit time, RFC 3339
}

// prepareSource downloads the KubeVirt module (a no-op when the module cache has it).
func prepareSource(ctx context.Context, o build.Options) (source, error) {
	m, err := build.DownloadModule(ctx, o.Cache, Module, Version) // the cache: outside any module
	if err != nil {
		return source{}, err
	}
	gomod, err := os.ReadFile(filepath.Join(m.Dir, "go.mod"))
	if err != nil {
		return source{}, fmt.Errorf("read %s go.mod: %w", Module, err)
	}
	return source{Dir: m.Dir, GoMod: gomod, Commit: m.Commit(), Time: m.Time}, nil
}

// commands are the packages of the KubeVirt module the images need, plus the manifest
// templator. They are built with cgo, in one go build: virt-launcher links libvirt and
// virt-handler's node labeller includes <linux/kvm.h>. (Upstream links virt-operator, virt-api
// and virt-controller statically; here they are dynamic, which is why their tiny root carries
// the C library and loader, and why everything compiles once instead of twice.)
func commands() []string {
	return append(deployedCommands(), undeployedCommands()...)
}

// deployedCommands are the commands of the images a lab cluster runs (virt-handler is our
// adapted build, from buildNoDummyHandler).
func deployedCommands() []string {
	return []string{
		"cmd/virt-operator", "cmd/virt-api", "cmd/virt-controller",
		"cmd/virt-chroot", "cmd/virt-launcher", "cmd/virt-launcher-monitor", "cmd/virt-freezer",
		"cmd/virt-probe", "cmd/virt-tail", "cmd/virt-launcher/libvirt-hook-client",
		"cmd/virt-exportproxy", "tools/manifest-templator",
	}
}

// undeployedCommands are the commands of the images only BuildAll makes: the stock
// virt-handler and virt-exportserver, which make e2e-registry mirrors under upstream's names.
func undeployedCommands() []string {
	return []string{"cmd/virt-handler", "cmd/virt-exportserver"}
}

// buildTags are the tags KubeVirt's own build uses (hack/common.sh).
const buildTags = "selinux"

// renderGoMod writes the wrapper module's go.mod: it requires KubeVirt and repeats KubeVirt's
// replace directives, which a dependency's go.mod cannot impose on its users. KubeVirt's
// ./staging replacements become the published api and client-go modules of the same version,
// the stand-in modules replace what the proxy does not serve, and replaceKubevirt, when set,
// points KubeVirt itself at a local copy.
func renderGoMod(kubevirtGoMod []byte, standins []kvfixtures.StandinModule, replaceKubevirt string) ([]byte, error) {
	kv, err := modfile.Parse("go.mod", kubevirtGoMod, nil)
	if err != nil {
		return nil, fmt.Errorf("parse %s go.mod: %w", Module, err)
	}
	w := &modfile.File{}
	if err := w.AddModuleStmt("pxec.local/build/kubevirt"); err != nil {
		return nil, err
	}
	goVersion := "1.26.0"
	if kv.Go != nil {
		goVersion = kv.Go.Version
	}
	if err := w.AddGoStmt(goVersion); err != nil {
		return nil, err
	}
	if err := w.AddRequire(Module, Version); err != nil {
		return nil, err
	}
	standinPaths := map[string]bool{}
	for _, s := range standins {
		standinPaths[s.Path] = true
	}
	for _, r := range kv.Replace {
		if standinPaths[r.Old.Path] {
			continue
		}
		newPath, newVersion := r.New.Path, r.New.Version
		if modfile.IsDirectoryPath(newPath) {
			if !strings.HasPrefix(r.Old.Path, "kubevirt.io/") {
				return nil, fmt.Errorf("%s go.mod replaces %s with directory %s: no published module to use instead", Module, r.Old.Path, newPath)
			}
			newPath, newVersion = r.Old.Path, Version
		}
		if err := w.AddReplace(r.Old.Path, r.Old.Version, newPath, newVersion); err != nil {
			return nil, fmt.Errorf("replace %s: %w", r.Old.Path, err)
		}
	}
	for _, s := range standins {
		if err := w.AddReplace(s.Path, "", "./standin/"+s.Path, ""); err != nil {
			return nil, fmt.Errorf("replace %s: %w", s.Path, err)
		}
	}
	if replaceKubevirt != "" {
		if err := w.AddReplace(Module, "", replaceKubevirt, ""); err != nil {
			return nil, err
		}
	}
	w.Cleanup()
	return w.Format()
}

// renderTools writes a file that imports the commands, so that go mod tidy records everything
// they need (the build tag keeps it out of every build).
func renderTools(pkgs []string) []byte {
	var b bytes.Buffer
	b.WriteString("//go:build tools\n\n// Package tools pins the KubeVirt commands this wrapper builds.\npackage tools\n\nimport (\n")
	for _, p := range pkgs {
		fmt.Fprintf(&b, "\t_ %q\n", Module+"/"+p)
	}
	b.WriteString(")\n")
	return b.Bytes()
}

// renderStandinGoMod writes the go.mod of one stand-in module.
func renderStandinGoMod(s kvfixtures.StandinModule) ([]byte, error) {
	f := &modfile.File{}
	if err := f.AddModuleStmt(s.Path); err != nil {
		return nil, err
	}
	if err := f.AddGoStmt("1.24"); err != nil {
		return nil, err
	}
	for _, r := range s.Require {
		path, version, ok := strings.Cut(r, " ")
		if !ok {
			return nil, fmt.Errorf("stand-in %s: requirement %q is not \"path version\"", s.Path, r)
		}
		if err := f.AddRequire(path, version); err != nil {
			return nil, fmt.Errorf("stand-in %s: %w", s.Path, err)
		}
	}
	f.Cleanup()
	return f.Format()
}

// wrapper is a generated module under the cache that builds KubeVirt commands.
type wrapper struct {
	Dir   string
	Files map[string][]byte // relative path -> content, everything the module is made of
}

// newWrapper renders the wrapper module's files: go.mod, go.sum seeded from KubeVirt's, the
// tools file and the stand-in modules.
func newWrapper(dir string, src source, pkgs []string, replaceKubevirt string) (*wrapper, error) {
	standins := kvfixtures.StandinModules()
	gomod, err := renderGoMod(src.GoMod, standins, replaceKubevirt)
	if err != nil {
		return nil, err
	}
	gosum, err := os.ReadFile(filepath.Join(src.Dir, "go.sum"))
	if err != nil {
		return nil, fmt.Errorf("read %s go.sum: %w", Module, err)
	}
	w := &wrapper{Dir: dir, Files: map[string][]byte{
		"go.mod":   gomod,
		"go.sum":   gosum,
		"tools.go": renderTools(pkgs),
	}}
	fixtures := kvfixtures.Files()
	for _, s := range standins {
		root := kvfixtures.StandinDir + "/" + s.Path
		err := fs.WalkDir(fixtures, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fs.ReadFile(fixtures, p)
			if err != nil {
				return err
			}
			w.Files["standin/"+strings.TrimPrefix(p, kvfixtures.StandinDir+"/")] = data
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read stand-in %s: %w", s.Path, err)
		}
		mod, err := renderStandinGoMod(s)
		if err != nil {
			return nil, err
		}
		w.Files["standin/"+s.Path+"/go.mod"] = mod
	}
	return w, nil
}

// Hash covers every file of the wrapper plus extra inputs.
func (w *wrapper) Hash(extra ...string) string {
	names := make([]string, 0, len(w.Files))
	for n := range w.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := append([]string{}, extra...)
	for _, n := range names {
		parts = append(parts, n, string(w.Files[n]))
	}
	return build.Hash(parts...)
}

// Write replaces the wrapper directory's module files (build outputs under bin/ stay).
func (w *wrapper) Write() error {
	for _, stale := range []string{"standin", "go.mod", "go.sum", "tools.go"} {
		if err := os.RemoveAll(filepath.Join(w.Dir, stale)); err != nil {
			return fmt.Errorf("clean %s: %w", w.Dir, err)
		}
	}
	for name, data := range w.Files {
		p := filepath.Join(w.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}

// goCmd runs the go command in the wrapper, with cgo.
func (w *wrapper) goCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = w.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off")
	return cmd
}

// ldflags stamp the version KubeVirt reports (kubevirt.io/client-go/version), as KubeVirt's
// hack/version.sh does; unstamped binaries report a "$Format:%h$" version.
func ldflags(src source, treeState string) string {
	commit := src.Commit
	if commit == "" {
		commit = "unknown"
	}
	const pkg = "kubevirt.io/client-go/version"
	return strings.Join([]string{
		"-s", "-w",
		"-X", pkg + ".gitVersion=" + Version,
		"-X", pkg + ".gitCommit=" + commit,
		"-X", pkg + ".gitTreeState=" + treeState,
		"-X", pkg + ".buildDate=" + src.Time,
	}, " ")
}

// binaries is the directory of built commands, by base name.
type binaries struct {
	Dir    string
	Inputs string // hash of everything they were built from
}

func (b binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// buildBinaries builds the KubeVirt commands of the deployed images, plus container-disk (C).
func buildBinaries(ctx context.Context, o build.Options, src source) (binaries, error) {
	return buildCommands(ctx, o, src, "kubevirt binaries (go build "+Version+")", "bin", deployedCommands(), true)
}

// buildUndeployedBinaries builds undeployedCommands in the same wrapper as buildBinaries, whose
// compiled packages they reuse from the Go build cache.
func buildUndeployedBinaries(ctx context.Context, o build.Options, src source) (binaries, error) {
	return buildCommands(ctx, o, src, "kubevirt binaries no lab cluster runs (go build "+Version+")", "bin-undeployed", undeployedCommands(), false)
}

// buildCommands builds cmds of the KubeVirt module into <wrapper>/<out>, with container-disk
// when cDisk, or finds them up to date there. The wrapper lists every command of commands(), so
// its go.mod and go.sum are one for all builds.
func buildCommands(ctx context.Context, o build.Options, src source, step, out string, cmds []string, cDisk bool) (binaries, error) {
	dir := filepath.Join(o.Cache, "src", "kubevirt-"+Version)
	w, err := newWrapper(dir, src, commands(), "")
	if err != nil {
		return binaries{}, err
	}
	containerDisk := filepath.Join(src.Dir, "cmd", "container-disk-v2alpha", "main.c")
	ld := ldflags(src, "clean")
	inputs := w.Hash(Version, runtime.Version(), ld, buildTags, strings.Join(cmds, " "), fmt.Sprint(cDisk))
	bins := binaries{Dir: filepath.Join(dir, out), Inputs: inputs}
	var want []string
	if cDisk {
		want = append(want, "container-disk")
	}
	for _, p := range cmds {
		want = append(want, filepath.Base(p))
	}
	if !o.Force && stampMatches(bins.Dir, inputs, want) {
		o.Progress.Skip(step, "up to date")
		return bins, nil
	}
	if err := o.Progress.Step(step+": modules", func() error {
		if err := ensureLibvirtDev(ctx, o); err != nil {
			return err
		}
		if err := w.Write(); err != nil {
			return err
		}
		return build.Run(ctx, o.Log, w.goCmd(ctx, "mod", "tidy"))
	}); err != nil {
		return bins, err
	}
	err = o.CPU.Step(ctx, o.Progress, step, func() error {
		if err := os.RemoveAll(bins.Dir); err != nil {
			return err
		}
		args := []string{"build", "-trimpath", "-tags", buildTags, "-ldflags", ld, "-o", bins.Dir + "/"}
		for _, p := range cmds {
			args = append(args, Module+"/"+p)
		}
		if err := build.Run(ctx, o.Log, w.goCmd(ctx, args...)); err != nil {
			return err
		}
		if cDisk {
			// container-disk runs in FROM-scratch containerDisk images: static, as upstream builds it.
			if err := build.Run(ctx, o.Log, exec.CommandContext(ctx, "gcc", "-static", "-O2", "-o",
				bins.Path("container-disk"), containerDisk)); err != nil {
				return err
			}
		}
		return writeStamp(bins.Dir, inputs)
	})
	return bins, err
}

// buildNoDummyHandler builds virt-handler from a writable copy of the KubeVirt module with the
// adaptation patch applied. go build -overlay cannot replace files under the module cache, so
// the copy is wired in with a replace directive.
func buildNoDummyHandler(ctx context.Context, o build.Options, src source, stock binaries) (binaries, error) {
	patch, err := fs.ReadFile(kvfixtures.Files(), kvfixtures.NoDummyPatch)
	if err != nil {
		return binaries{}, fmt.Errorf("read %s: %w", kvfixtures.NoDummyPatch, err)
	}
	dir := filepath.Join(o.Cache, "src", "kubevirt-"+NoDummyTag)
	const handler = "cmd/virt-handler"
	// The packages the patch touches, vetted and tested in the patched copy.
	patched := []string{"pkg/network/driver/nmstate", "pkg/network/driver/netlink", "pkg/network/driver/netlink/fake"}
	w, err := newWrapper(dir, src, []string{handler}, "./kubevirt")
	if err != nil {
		return binaries{}, err
	}
	ld := ldflags(src, "dirty")
	inputs := w.Hash(Version, runtime.Version(), ld, buildTags, string(patch), stock.Inputs)
	bins := binaries{Dir: filepath.Join(dir, "bin"), Inputs: inputs}
	if !o.Force && stampMatches(bins.Dir, inputs, []string{"virt-handler"}) {
		o.Progress.Skip("virt-handler with "+Adaptation, "up to date")
		return bins, nil
	}
	err = o.CPU.Step(ctx, o.Progress, "virt-handler with "+Adaptation, func() error {
		for _, stale := range []string{bins.Dir, filepath.Join(dir, "kubevirt")} {
			if err := os.RemoveAll(stale); err != nil {
				return err
			}
		}
		if err := w.Write(); err != nil {
			return err
		}
		// The stock wrapper's go.sum is complete for everything the copy needs.
		if sum, err := os.ReadFile(filepath.Join(filepath.Dir(stock.Dir), "go.sum")); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
				return err
			}
		}
		copyDir := filepath.Join(dir, "kubevirt")
		if err := build.Run(ctx, o.Log, exec.CommandContext(ctx, "cp", "-a", src.Dir, copyDir)); err != nil {
			return err
		}
		if err := build.Run(ctx, o.Log, exec.CommandContext(ctx, "chmod", "-R", "u+w", copyDir)); err != nil {
			return err
		}
		patchFile := filepath.Join(dir, kvfixtures.NoDummyPatch)
		if err := os.WriteFile(patchFile, patch, 0o644); err != nil {
			return err
		}
		// --fuzz=0: the patch must match KubeVirt's source exactly, or the build stops here.
		apply := exec.CommandContext(ctx, "patch", "-p1", "--batch", "--forward", "--fuzz=0", "-i", patchFile)
		apply.Dir = copyDir
		if err := build.Run(ctx, o.Log, apply); err != nil {
			return fmt.Errorf("apply %s to %s %s: %w", kvfixtures.NoDummyPatch, Module, Version, err)
		}
		if err := build.Run(ctx, o.Log, w.goCmd(ctx, "mod", "tidy")); err != nil {
			return err
		}
		var pkgs []string
		for _, p := range patched {
			pkgs = append(pkgs, Module+"/"+p)
		}
		if err := build.Run(ctx, o.Log, w.goCmd(ctx, append([]string{"vet"}, pkgs...)...)); err != nil {
			return err
		}
		if err := build.Run(ctx, o.Log, w.goCmd(ctx, append([]string{"test", "-count=1"}, pkgs...)...)); err != nil {
			return err
		}
		if err := build.Run(ctx, o.Log, w.goCmd(ctx, "build", "-trimpath", "-tags", buildTags,
			"-ldflags", ld, "-o", bins.Dir+"/", Module+"/"+handler)); err != nil {
			return err
		}
		return writeStamp(bins.Dir, inputs)
	})
	return bins, err
}

// ensureLibvirtDev installs the libvirt headers virt-launcher's cgo build needs when the host
// lacks them (a build dependency, from the host's own Debian sources).
func ensureLibvirtDev(ctx context.Context, o build.Options) error {
	if exec.CommandContext(ctx, "pkg-config", "--exists", "libvirt").Run() == nil {
		return nil
	}
	return o.Progress.Step("apt-get install libvirt-dev (virt-launcher build dependency)", func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "libvirt-dev", "pkg-config")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		return build.Run(ctx, o.Log, cmd)
	})
}

const stampFile = ".inputs"

// stampMatches reports whether dir was built from inputs and still holds every named file.
func stampMatches(dir, inputs string, names []string) bool {
	got, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil || strings.TrimSpace(string(got)) != inputs {
		return false
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

func writeStamp(dir, inputs string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stampFile), []byte(inputs+"\n"), 0o644)
}
