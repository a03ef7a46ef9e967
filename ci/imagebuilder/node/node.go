package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// modulePath is this repository's module, which holds the fixtures the node is made from.
const modulePath = "github.com/pxe-conformance/pxe-conformance"

// ImageName is the node image Build makes for these options: <prefix>/kind-node:<Kubernetes version>.
func ImageName(o build.Options) string { return o.Image("kind-node", KubernetesVersion) }

// builder carries what every step of one Build needs.
type builder struct {
	o    build.Options // Cache, Log and Progress filled in by newBuilder
	repo string        // root of this repository's checkout
}

// Build makes the kind node image (and the control-plane images preloaded into it), or finds
// them up to date, and returns their names, the node image first.
func Build(ctx context.Context, o build.Options) ([]string, error) {
	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(b.o.Cache, "work"), 0o755); err != nil {
		return nil, err
	}
	kindMod, err := build.DownloadModule(ctx, b.o.Cache, "sigs.k8s.io/kind", KindVersion)
	if err != nil {
		return nil, err
	}
	kindBase := filepath.Join(kindMod.Dir, "images", "base")

	// Root filesystems come from the network and Go builds from the CPU: do both at once.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type roots struct {
		node, proxy string
		err         error
	}
	rootsDone := make(chan roots, 1)
	go func() {
		var r roots
		if r.node, r.err = b.debootstrap(ctx, "node", nodePackages()); r.err == nil {
			r.proxy, r.err = b.debootstrap(ctx, "kube-proxy", proxyPackages())
		}
		if r.err != nil {
			cancel()
		}
		rootsDone <- r
	}()
	bins, buildErr := b.binaries(ctx)
	if buildErr != nil {
		cancel()
	}
	r := <-rootsDone
	if buildErr != nil {
		return nil, buildErr
	}
	if r.err != nil {
		return nil, r.err
	}

	base, err := b.baseImage(ctx, baseParts{rootfs: r.node, kindBase: kindBase, crictl: bins.crictl, cni: bins.cni, capdrop: bins.capdrop})
	if err != nil {
		return nil, err
	}
	kindConfig, err := os.ReadFile(filepath.Join(kindBase, "files/etc/containerd/config.toml"))
	if err != nil {
		return nil, err
	}
	sandbox, err := sandboxImage(string(kindConfig))
	if err != nil {
		return nil, err
	}
	preloads, err := b.controlPlaneImages(ctx, imageParts{
		kube: bins.kube, etcd: bins.etcd, coredns: bins.coredns,
		pause: bins.pause, cniAgent: bins.cniAgent,
		proxyRootfs:    r.proxy,
		caFile:         filepath.Join(r.node, "etc/ssl/certs/ca-certificates.crt"),
		iptablesSelect: filepath.Join(b.repo, "fixtures/kind/kube-proxy/iptables-select"),
		sandbox:        sandbox,
	})
	if err != nil {
		return nil, err
	}
	manifests, err := b.kindFiles(preloads[len(preloads)-1].image)
	if err != nil {
		return nil, err
	}

	image := ImageName(o)
	parts := []string{recipe, build.ImageInputs(ctx, base), filepath.Base(bins.kube)}
	for _, p := range preloads {
		parts = append(parts, p.image+"="+build.ImageInputs(ctx, p.image), strings.Join(p.refs, ","))
	}
	for _, rel := range build.SortedKeys(manifests) {
		parts = append(parts, rel, string(manifests[rel]))
	}
	inputs := build.Hash(parts...)
	names := []string{image}
	for _, p := range preloads {
		names = append(names, p.image)
	}
	if !o.Force && build.UpToDate(ctx, image, inputs) {
		b.o.Progress.Skip("image "+image, "up to date")
		return names, nil
	}
	err = b.imageStep(ctx, image, func() error {
		return b.assembleNode(ctx, image, inputs, nodeParts{base: base, kube: bins.kube, preload: preloads, manifest: manifests})
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}

func newBuilder(ctx context.Context, o build.Options) (*builder, error) {
	if o.Cache == "" {
		o.Cache = build.CacheDir()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Progress == nil {
		o.Progress = build.NewProgress(io.Discard, 0)
	}
	b := &builder{o: o}
	for _, tool := range []string{"go", "docker", "debootstrap", "chroot", "systemctl", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("node image needs %s: %w", tool, err)
		}
	}
	out, err := build.Output(ctx, exec.CommandContext(ctx, "go", "env", "GOMOD"))
	if err != nil {
		return nil, err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, fmt.Errorf("run the builder inside the %s checkout (go env GOMOD: %q)", modulePath, gomod)
	}
	b.repo = filepath.Dir(gomod)
	if data, err := os.ReadFile(gomod); err != nil || !strings.HasPrefix(string(data), "module "+modulePath+"\n") {
		return nil, fmt.Errorf("run the builder inside the %s checkout (found %s)", modulePath, gomod)
	}
	return b, nil
}

// binaries are the build outputs the images are assembled from.
type binaries struct {
	kube, etcd, coredns, crictl, cni string // output directories
	pause, cniAgent, capdrop         string // binaries of this repository
}

func (b *builder) binaries(ctx context.Context) (binaries, error) {
	var out binaries
	// Kubernetes is built from this module, and CoreDNS's plugins are read from its kubeadm.
	kube, err := build.DownloadModule(ctx, b.o.Cache, "k8s.io/kubernetes", KubernetesVersion)
	if err != nil {
		return out, err
	}
	if out.kube, err = b.kubernetes(ctx, kube); err != nil {
		return out, err
	}
	if out.etcd, err = b.etcd(ctx); err != nil {
		return out, err
	}
	if out.coredns, err = b.coreDNS(ctx, kube); err != nil {
		return out, err
	}
	if out.crictl, err = b.crictl(ctx); err != nil {
		return out, err
	}
	if out.cni, err = b.cniPluginBinaries(ctx); err != nil {
		return out, err
	}
	dir := filepath.Join(b.o.Cache, "work", "repo-bin")
	// Each go build waits for the CPU gate itself (build.BuildLocal).
	err = b.o.Progress.Step("build pause, cni-agent, capdrop-runc", func() error {
		var err error
		if out.pause, err = b.buildRepoCommand(ctx, "./fixtures/kind/pause", dir); err != nil {
			return err
		}
		if out.cniAgent, err = b.buildRepoCommand(ctx, "./fixtures/kind/cni-agent", dir); err != nil {
			return err
		}
		out.capdrop, err = b.buildRepoCommand(ctx, "./fixtures/capdrop-runc", dir)
		return err
	})
	return out, err
}

// kindFiles renders what goes under /kind in the node: the version kind reads to pick its
// kubeadm config, and the default CNI and storage manifests it applies.
func (b *builder) kindFiles(agentImage string) (map[string][]byte, error) {
	cni, err := os.ReadFile(filepath.Join(b.repo, "fixtures/kind/default-cni.yaml"))
	if err != nil {
		return nil, err
	}
	storage, err := os.ReadFile(filepath.Join(b.repo, "fixtures/kind/default-storage.yaml"))
	if err != nil {
		return nil, err
	}
	rendered, err := renderCNIManifest(string(cni), agentImage)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"version":                        []byte(KubernetesVersion + "\n"),
		"manifests/default-cni.yaml":     []byte(rendered),
		"manifests/default-storage.yaml": storage,
	}, nil
}

// renderCNIManifest puts the agent image into the default CNI manifest.
func renderCNIManifest(manifest, image string) (string, error) {
	const placeholder = "PXEC_CNI_AGENT_IMAGE"
	if !strings.Contains(manifest, "image: "+placeholder) {
		return "", fmt.Errorf("default CNI manifest has no %q to replace", "image: "+placeholder)
	}
	return strings.ReplaceAll(manifest, placeholder, image), nil
}
