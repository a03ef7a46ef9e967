package network

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
)

// Sonobuoy, pinned here and nowhere else. It is built from its own module, as its go.mod pins
// its dependencies (k8s.io v0.27): in our go.mod it would be built against our k8s.io v0.34.
const (
	SonobuoyModule  = "github.com/vmware-tanzu/sonobuoy"
	SonobuoyVersion = "v0.57.3"
	// PluginTag is the plugin image's tag: it changes with our source, as the PXE server's.
	PluginTag = "dev"
)

// The plugin image's layout.
const (
	suitePackage      = "./suites/pxe"
	suiteTags         = "e2e"
	entrypointPackage = "./fixtures/sonobuoy/entrypoint"
	// PluginCacheDir is PXEC_CACHE in the plugin image: the guest payload is seeded there, where
	// bootimage.Build finds it without apt.
	PluginCacheDir = "/var/cache/pxe-conformance"
)

// SonobuoyImageNames returns the names BuildSonobuoy gives its images under o's prefix: the
// plugin's and Sonobuoy's own.
func SonobuoyImageNames(o build.Options) []string {
	return []string{PluginImage(o), SonobuoyImage(o)}
}

// PluginImage is the Sonobuoy plugin's image (fixtures/sonobuoy/plugin.yaml names it).
func PluginImage(o build.Options) string { return o.Image("pxe-conformance-sonobuoy", PluginTag) }

// SonobuoyImage is Sonobuoy's aggregator and worker image, one binary that is also its CLI.
func SonobuoyImage(o build.Options) string { return o.Image("sonobuoy", SonobuoyVersion) }

// BuildSonobuoy makes the Sonobuoy plugin's image and Sonobuoy's own, each only when its inputs
// changed, and returns their names.
func BuildSonobuoy(ctx context.Context, o build.Options) ([]string, error) {
	b, err := newBuilder(o)
	if err != nil {
		return nil, err
	}
	return b.images(ctx, b.plugin, b.sonobuoy)
}

// plugin builds pxec.local/pxe-conformance-sonobuoy: the compiled suite, the entrypoint and the
// guest payload the suite hands its PXE servers (a pod cannot apt-get download it). Nothing
// else: the suite reaches the cluster with the pod's service account and its CA, and talks to
// nothing outside it.
func (b *builder) plugin(ctx context.Context) (string, error) {
	name := PluginImage(b.o)
	suiteHash, err := b.testHash(ctx, suitePackage, suiteTags)
	if err != nil {
		return "", err
	}
	entryHash, err := b.localHash(ctx, entrypointPackage)
	if err != nil {
		return "", err
	}
	var payload *bootimage.Payload
	err = b.o.Progress.Step("guest payload", func() error {
		payload, err = bootimage.Build(ctx, bootimage.Config{CacheDir: b.o.Cache, Logf: func(f string, a ...any) {
			fmt.Fprintf(b.o.Log, f+"\n", a...)
		}})
		return err
	})
	if err != nil {
		return "", err
	}
	inputs := build.Hash(recipe, "sonobuoy-plugin", runtime.Version(), suiteHash, entryHash, payload.Manifest.Key)
	instructions := []string{
		"ENV PXEC_CACHE=" + PluginCacheDir,
		`ENTRYPOINT ["/usr/bin/pxec-sonobuoy"]`,
	}
	err = b.image(ctx, name, inputs, instructions, func(root string) error {
		if err := b.goTestBinary(ctx, suitePackage, suiteTags, filepath.Join(root, "usr/bin/pxe-conformance.test")); err != nil {
			return err
		}
		if err := build.BuildLocal(ctx, b.o, b.repo, entrypointPackage, filepath.Join(root, "usr/bin/pxec-sonobuoy")); err != nil {
			return err
		}
		return payload.Seed(filepath.Join(root, PluginCacheDir))
	})
	return name, err
}

// sonobuoy builds pxec.local/sonobuoy: Sonobuoy's binary at /sonobuoy, where its aggregator
// pod, its worker sidecars and `sonobuoy retrieve` (which runs /sonobuoy splat in the
// aggregator) expect it, with the command of its own image.
func (b *builder) sonobuoy(ctx context.Context) (string, error) {
	name := SonobuoyImage(b.o)
	inputs := build.Hash(recipe, "sonobuoy", SonobuoyModule, SonobuoyVersion, runtime.Version())
	instructions := []string{
		"WORKDIR /",
		`CMD ["/sonobuoy", "aggregator", "--no-exit", "-v", "3", "--logtostderr"]`,
	}
	err := b.image(ctx, name, inputs, instructions, func(root string) error {
		dir, err := build.GoBuild{
			Name:    "sonobuoy-" + SonobuoyVersion,
			Require: map[string]string{SonobuoyModule: SonobuoyVersion},
			Bins:    map[string]string{"sonobuoy": SonobuoyModule},
			Ldflags: "-s -w -X " + SonobuoyModule + "/pkg/buildinfo.Version=" + SonobuoyVersion,
		}.Build(ctx, b.o)
		if err != nil {
			return err
		}
		return build.CopyFile(filepath.Join(dir, "sonobuoy"), filepath.Join(root, "sonobuoy"), 0o755)
	})
	return name, err
}

// goTestBinary compiles the tests of one package of this repository, with tags, into the file
// out (go test -c): a static binary that runs the suite without the go command.
func (b *builder) goTestBinary(ctx context.Context, pkg, tags, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-tags", tags, "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = b.repo
	cmd.Env = goEnv("GOFLAGS=-buildvcs=false")
	if err := build.Run(ctx, b.o.Log, cmd); err != nil {
		return fmt.Errorf("compile the tests of %s: %w", pkg, err)
	}
	return nil
}

// newBuilder is the builder Build and BuildSonobuoy share, with o's defaults filled in.
func newBuilder(o build.Options) (*builder, error) {
	if o.Progress == nil {
		o.Progress = build.NewProgress(io.Discard, 0)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Cache == "" {
		o.Cache = build.CacheDir()
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	b := &builder{o: o, repo: root, work: filepath.Join(o.Cache, "network")}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return nil, err
	}
	return b, nil
}
