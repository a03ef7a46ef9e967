package network

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// Versions, pinned here and nowhere else in the builder.
const (
	MultusModule      = "gopkg.in/k8snetworkplumbingwg/multus-cni.v4"
	MultusVersion     = "v4.2.2"
	CNIPluginsModule  = "github.com/containernetworking/plugins"
	CNIPluginsVersion = "v1.7.1"
	// PXEServerTag is the PXE server image's tag; the image changes with our source, not with
	// an upstream version, and pods name it with imagePullPolicy IfNotPresent.
	PXEServerTag = "dev"
)

// recipe changes whenever the way these images are assembled changes, so that images built by
// an older recipe are rebuilt.
const recipe = "network-recipe-2" // 2: binaries from build.GoBuild wrapper modules

// cniPluginPackages lists the plugins the cni-plugins image carries: binary name and package
// directory in the plugins module. The installer DaemonSet (fixtures/manifests) names the same.
func cniPluginPackages() [][2]string {
	var out [][2]string
	for _, name := range []string{"bridge", "static", "tuning", "host-local"} {
		out = append(out, [2]string{name, strings.TrimPrefix(CNIPlugins().Bins[name], CNIPluginsModule+"/")})
	}
	return out
}

// CNIPlugins is the one build of the CNI plugins: the node image's /opt/cni/bin takes all of
// them, the cni-plugins image those of cniPluginPackages.
func CNIPlugins() build.GoBuild {
	bins := map[string]string{}
	for name, dir := range map[string]string{
		"bridge": "plugins/main/bridge", "host-local": "plugins/ipam/host-local", "static": "plugins/ipam/static",
		"loopback": "plugins/main/loopback", "portmap": "plugins/meta/portmap", "ptp": "plugins/main/ptp",
		"tuning": "plugins/meta/tuning", "macvlan": "plugins/main/macvlan",
	} {
		bins[name] = CNIPluginsModule + "/" + dir
	}
	return build.GoBuild{
		Name:    "cni-plugins-" + CNIPluginsVersion,
		Require: map[string]string{CNIPluginsModule: CNIPluginsVersion},
		Bins:    bins,
		Ldflags: "-s -w -X " + CNIPluginsModule + "/pkg/utils/buildversion.BuildVersion=" + CNIPluginsVersion,
	}
}

// Image names, as the framework's manifests expect them under the default prefix.
// ImageNames returns the names Build gives its images under o's prefix.
func ImageNames(o build.Options) []string {
	return []string{MultusImage(o), CNIPluginsImage(o), PXEServerImage(o)}
}

// MultusImage names the Multus image under o's prefix.
func MultusImage(o build.Options) string { return o.Image("multus", MultusVersion) }

// CNIPluginsImage names the CNI plugins image under o's prefix.
func CNIPluginsImage(o build.Options) string { return o.Image("cni-plugins", CNIPluginsVersion) }

// PXEServerImage names the PXE server image under o's prefix.
func PXEServerImage(o build.Options) string { return o.Image("pxe-server", PXEServerTag) }

// Build makes the Multus, CNI plugins and PXE server images, each only when its inputs
// changed, and returns their names.
func Build(ctx context.Context, o build.Options) ([]string, error) {
	b, err := newBuilder(o)
	if err != nil {
		return nil, err
	}
	return b.images(ctx, b.multus, b.cniPlugins, b.pxeServer)
}

// BuildOwn makes only the images a cluster whose other images come from registries still
// takes from us: the CNI plugins (kind's node image lacks bridge, static and tuning) and the
// PXE server.
func BuildOwn(ctx context.Context, o build.Options) ([]string, error) {
	b, err := newBuilder(o)
	if err != nil {
		return nil, err
	}
	return b.images(ctx, b.cniPlugins, b.pxeServer)
}

// images runs each image step in turn and returns the names of the images made, up to the
// first step that failed.
func (b *builder) images(ctx context.Context, steps ...func(context.Context) (string, error)) ([]string, error) {
	var images []string
	for _, step := range steps {
		img, err := step(ctx)
		if err != nil {
			return images, err
		}
		images = append(images, img)
	}
	return images, nil
}

// builder carries what every step needs.
type builder struct {
	o    build.Options
	repo string // the repository root (holds go.mod)
	work string // $PXEC_CACHE/network
}

// image runs fill on a fresh root directory and imports the result as name, unless an image
// of that name already records inputs (or Force is set).
func (b *builder) image(ctx context.Context, name, inputs string, instructions []string, fill func(root string) error) error {
	step := "image " + name
	if !b.o.Force && build.UpToDate(ctx, name, inputs) {
		b.o.Progress.Skip(step, "up to date")
		return nil
	}
	return b.o.Progress.Step(step, func() error {
		root := filepath.Join(b.work, "rootfs", filepath.Base(name))
		if err := os.RemoveAll(root); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
			return err
		}
		// A world-writable, sticky /tmp, as programs expect; the ready file goes there.
		if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky); err != nil {
			return err
		}
		if err := fill(root); err != nil {
			return err
		}
		instructions = append(instructions, fmt.Sprintf("LABEL org.opencontainers.image.source=%q", "https://github.com/pxe-conformance/pxe-conformance"))
		return build.ImportDir(ctx, b.o.Log, root, name, inputs, instructions)
	})
}

// multus builds pxec.local/multus laid out as upstream's thin image (its images/Dockerfile):
// multus, passthru and install_multus in /usr/src/multus-cni/bin, install_multus also at /.
func (b *builder) multus(ctx context.Context) (string, error) {
	name := MultusImage(b.o)
	inputs := build.Hash(recipe, "multus", MultusModule, MultusVersion, runtime.Version(), "layout=upstream-thin")
	err := b.image(ctx, name, inputs, []string{`ENTRYPOINT ["/install_multus"]`}, func(root string) error {
		// Multus's hack/build-go.sh names the passthru plugin "passthru".
		bins := map[string]string{"multus": "cmd/multus", "install_multus": "cmd/install_multus", "passthru": "cmd/passthru-cni"}
		g := build.GoBuild{
			Name:    "multus-" + MultusVersion,
			Require: map[string]string{MultusModule: MultusVersion},
			Bins:    map[string]string{},
			Ldflags: "-s -w -X " + MultusModule + "/pkg/multus.version=" + MultusVersion +
				" -X " + MultusModule + "/pkg/multus.releaseStatus=,released",
		}
		for bin, pkg := range bins {
			g.Bins[bin] = MultusModule + "/" + pkg
		}
		dir, err := g.Build(ctx, b.o)
		if err != nil {
			return err
		}
		for bin := range bins {
			if err := build.CopyFile(filepath.Join(dir, bin), filepath.Join(root, "usr/src/multus-cni/bin", bin), 0o755); err != nil {
				return err
			}
		}
		return build.CopyFile(filepath.Join(dir, "install_multus"), filepath.Join(root, "install_multus"), 0o755)
	})
	return name, err
}

// cniPlugins builds pxec.local/cni-plugins: the plugins nodes may lack and pxec-cni-setup.
func (b *builder) cniPlugins(ctx context.Context) (string, error) {
	name := CNIPluginsImage(b.o)
	setupHash, err := b.localHash(ctx, "./fixtures/cni-setup")
	if err != nil {
		return "", err
	}
	parts := []string{recipe, "cni-plugins", CNIPluginsModule, CNIPluginsVersion, runtime.Version(), setupHash}
	for _, p := range cniPluginPackages() {
		parts = append(parts, p[0]+"="+p[1])
	}
	inputs := build.Hash(parts...)
	err = b.image(ctx, name, inputs, []string{`ENTRYPOINT ["/usr/bin/pxec-cni-setup"]`}, func(root string) error {
		dir, err := CNIPlugins().Build(ctx, b.o)
		if err != nil {
			return err
		}
		for _, p := range cniPluginPackages() {
			if err := build.CopyFile(filepath.Join(dir, p[0]), filepath.Join(root, "usr/lib/pxec/cni", p[0]), 0o755); err != nil {
				return err
			}
		}
		return build.BuildLocal(ctx, b.o, b.repo, "./fixtures/cni-setup", filepath.Join(root, "usr/bin/pxec-cni-setup"))
	})
	return name, err
}
