package bootimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// requireAptTools skips unless the host can fetch and unpack Debian packages.
func requireAptTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "apt-config", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, tool+" not found: the payload is built from Debian packages")
		}
	}
}

// testContext bounds a test that may download packages.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// buildPayload builds (or reads from the shared cache) the standard payload.
func buildPayload(t *testing.T) *Payload {
	t.Helper()
	requireAptTools(t)
	p, err := Build(testContext(t), Config{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

// freshCache returns an empty cache directory whose debs/ is the shared
// cache's, so a Build there redoes everything but the downloads.
func freshCache(t *testing.T) string {
	t.Helper()
	shared, err := DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(shared, "debs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(shared, "debs"), filepath.Join(dir, "debs")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// unpackedPackages downloads and unpacks the named packages of the current
// plan (see plan.all) through the shared cache and returns their trees.
func unpackedPackages(t *testing.T, names ...string) map[string]string {
	t.Helper()
	requireAptTools(t)
	ctx := testContext(t)
	b, err := newBuilder(Config{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.resolve(ctx)
	if err != nil {
		t.Fatalf("resolve packages: %v", err)
	}
	byName := map[string]Package{}
	for _, pkg := range p.all() {
		byName[pkg.Name] = pkg
	}
	var pkgs []Package
	for _, n := range names {
		pkg, ok := byName[n]
		if !ok {
			t.Fatalf("package %s is not part of the payload plan", n)
		}
		pkgs = append(pkgs, pkg)
	}
	debs, err := b.apt.download(ctx, b.debsDir(), pkgs)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if err := os.MkdirAll(b.unpackedDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, pkg := range pkgs {
		dir := filepath.Join(b.unpackedDir(), pkg.unpackName())
		if err := unpackDeb(ctx, debs[pkg.Name], dir); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		out[pkg.Name] = dir
	}
	return out
}

// dropbearPlan returns dropbear-bin's dependency closure from the plan.
func dropbearPlan(t *testing.T) []string {
	t.Helper()
	requireAptTools(t)
	b, err := newBuilder(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.resolve(testContext(t))
	if err != nil {
		t.Fatalf("resolve packages: %v", err)
	}
	var names []string
	for _, pkg := range p.Dropbear {
		names = append(names, pkg.Name)
	}
	return names
}
