package kubevirt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

const (
	// Module is the Go module KubeVirt is built from.
	Module = "kubevirt.io/kubevirt"
	// Version is the KubeVirt version every image and the manifest are built at.
	Version = "v1.9.0"
	// Adaptation names our change to KubeVirt for kernels without the dummy link driver.
	Adaptation = "bridge-binding-without-dummy"
	// NoDummyTag is the image tag of the virt-handler built with Adaptation.
	NoDummyTag = Version + "-pxec-nodummy"
	// Namespace is the namespace the generated manifest installs KubeVirt into.
	Namespace = "kubevirt"
)

// Images names every image Build produces.
type Images struct {
	Operator, API, Controller, Launcher string
	// ExportProxy runs whenever KubeVirt does (v1.9.0 deploys it unconditionally);
	// ExportServer runs only for a VirtualMachineExport.
	ExportProxy, ExportServer string
	// Handler is virt-handler exactly as upstream builds it.
	Handler string
	// HandlerNoDummy is virt-handler with Adaptation; the generated manifest deploys it.
	HandlerNoDummy string
}

// ImageNames returns the names Build gives its images under o's prefix.
func ImageNames(o build.Options) Images {
	img := func(name, tag string) string { return o.Image("kubevirt/"+name, tag) }
	return Images{
		Operator:       img("virt-operator", Version),
		API:            img("virt-api", Version),
		Controller:     img("virt-controller", Version),
		Launcher:       img("virt-launcher", Version),
		ExportProxy:    img("virt-exportproxy", Version),
		ExportServer:   img("virt-exportserver", Version),
		Handler:        img("virt-handler", Version),
		HandlerNoDummy: img("virt-handler", NoDummyTag),
	}
}

// Deployed returns the images the generated manifest runs, the ones a cluster must be loaded
// with and Build makes. virt-exportserver is not among them: KubeVirt runs it only for a
// VirtualMachineExport, which the suite never creates.
func (i Images) Deployed() []string {
	return []string{i.Operator, i.API, i.Controller, i.HandlerNoDummy, i.Launcher, i.ExportProxy}
}

// All returns every image BuildAll makes: Deployed, the stock virt-handler and virt-exportserver.
func (i Images) All() []string {
	return append(i.Deployed(), i.Handler, i.ExportServer)
}

// ContainerPrefix returns the repository prefix the manifest's images share.
func ContainerPrefix(o build.Options) string {
	p := o.Prefix
	if p == "" {
		p = build.DefaultPrefix
	}
	return p + "/kubevirt"
}

// ManifestPath returns where Build writes the operator manifest (Namespace, CRD, RBAC and the
// virt-operator Deployment, with our image prefix, tag and imagePullPolicy IfNotPresent).
func ManifestPath(o build.Options) string {
	return filepath.Join(cacheDir(o), "manifests", "kubevirt-"+NoDummyTag, "kubevirt-operator.yaml")
}

func cacheDir(o build.Options) string {
	if o.Cache != "" {
		return o.Cache
	}
	return build.CacheDir()
}

// Build makes the images of Images.Deployed and the operator manifest, rebuilding only what
// changed since the last run, and returns the images' names.
func Build(ctx context.Context, o build.Options) ([]string, error) {
	return buildImageSet(ctx, o, false)
}

// BuildAll is Build plus the images no lab cluster runs, the stock virt-handler and
// virt-exportserver: the whole upstream set, which make e2e-registry mirrors under upstream's
// names. It returns Images.All.
func BuildAll(ctx context.Context, o build.Options) ([]string, error) {
	return buildImageSet(ctx, o, true)
}

func buildImageSet(ctx context.Context, o build.Options, all bool) ([]string, error) {
	if o.Progress == nil {
		o.Progress = build.NewProgress(os.Stderr, 0)
	}
	o.Cache = cacheDir(o)
	names := ImageNames(o)

	src, err := prepareSource(ctx, o)
	if err != nil {
		return nil, err
	}
	// The Go builds are CPU-bound, the root filesystems wait on the Debian mirror and the
	// disk: on a cold cache they run side by side.
	var bins, handler binaries
	var undeployed *binaries
	var bases roots
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if bins, err = buildBinaries(gctx, o, src); err != nil {
			return err
		}
		if handler, err = buildNoDummyHandler(gctx, o, src, bins); err != nil {
			return err
		}
		if all {
			b, err := buildUndeployedBinaries(gctx, o, src)
			if err != nil {
				return err
			}
			undeployed = &b
		}
		return nil
	})
	g.Go(func() error {
		var err error
		bases, err = buildBases(gctx, o)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := buildImages(ctx, o, src, bins, undeployed, handler, bases, names); err != nil {
		return nil, err
	}
	if err := buildManifest(ctx, o, src, bins, names); err != nil {
		return nil, err
	}
	o.Progress.Skip("kubevirt "+Version, fmt.Sprintf("virt-handler %s carries %s (fixtures/kubevirt); manifest %s",
		names.HandlerNoDummy, Adaptation, ManifestPath(o)))
	if all {
		return names.All(), nil
	}
	return names.Deployed(), nil
}
