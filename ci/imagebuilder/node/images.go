package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// cpImage is one image kubeadm runs: the name it asks for and how that name splits.
type cpImage struct {
	ref  string // as kubeadm prints it: registry.k8s.io/kube-apiserver:v1.34.4
	repo string // last path element: kube-apiserver, etcd, coredns, pause
	tag  string
}

// preload is a local image and the names it must carry inside the node's containerd.
type preload struct {
	image string
	refs  []string
}

// planImages checks kubeadm's image list against what this package builds, so a Kubernetes bump
// that wants another etcd or CoreDNS fails here, naming both versions, instead of in a cluster.
func planImages(list string) ([]cpImage, error) {
	want := map[string]string{
		"kube-apiserver":          KubernetesVersion,
		"kube-controller-manager": KubernetesVersion,
		"kube-scheduler":          KubernetesVersion,
		"kube-proxy":              KubernetesVersion,
		"etcd":                    strings.TrimPrefix(etcdVersion, "v") + "-0",
		"coredns":                 coreDNSVersion,
		"pause":                   "", // ours, any tag
	}
	var out []cpImage
	for _, ref := range strings.Fields(list) {
		colon := strings.LastIndex(ref, ":")
		if colon < 0 || colon < strings.LastIndex(ref, "/") {
			return nil, fmt.Errorf("image %q has no tag", ref)
		}
		img := cpImage{ref: ref, repo: ref[strings.LastIndex(ref[:colon], "/")+1 : colon], tag: ref[colon+1:]}
		w, ok := want[img.repo]
		if !ok {
			return nil, fmt.Errorf("kubeadm asks for %s, which this builder cannot make", ref)
		}
		if w != "" && w != img.tag {
			return nil, fmt.Errorf("kubeadm %s asks for %s but the builder pins %s %s", KubernetesVersion, ref, img.repo, w)
		}
		delete(want, img.repo)
		out = append(out, img)
	}
	if len(want) > 0 {
		return nil, fmt.Errorf("kubeadm's image list %q lacks %v", list, build.SortedKeys(want))
	}
	return out, nil
}

// sandboxImage reads the pause image containerd's CRI plugin uses from its config.
func sandboxImage(containerdConfig string) (string, error) {
	for _, line := range strings.Split(containerdConfig, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.TrimSpace(k) == "sandbox_image" {
			return strings.Trim(strings.TrimSpace(v), `"`), nil
		}
	}
	return "", fmt.Errorf("no sandbox_image in containerd config")
}

// tinyRoot writes what a static binary's image needs besides the binary: users, name service
// order, CA certificates (from the node root) and a world-writable /tmp.
func tinyRoot(dir, caFile string) error {
	files := map[string]string{
		"etc/passwd":        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
		"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"etc/nsswitch.conf": "hosts: files dns\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := build.CopyFile(caFile, filepath.Join(dir, "etc/ssl/certs/ca-certificates.crt"), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	return os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky)
}

// scratchImage builds image FROM scratch with root's content at / and the given instructions,
// unless an image with the same content and instructions exists.
func (b *builder) scratchImage(ctx context.Context, image, root string, instructions []string) error {
	dockerfile := "FROM scratch\nCOPY root/ /\n" + strings.Join(instructions, "\n") + "\n"
	content, err := build.HashDir(root)
	if err != nil {
		return err
	}
	inputs := build.Hash(recipe, content, dockerfile)
	if !b.o.Force && build.UpToDate(ctx, image, inputs) {
		b.o.Progress.Skip("image "+image, "up to date")
		return nil
	}
	return b.imageStep(ctx, image, func() error {
		return build.BuildDockerfile(ctx, b.o.Log, dockerfile, filepath.Dir(root), image, inputs)
	})
}

// imageParts are the inputs of the control-plane images.
type imageParts struct {
	kube, etcd, coredns string // build output directories
	pause, cniAgent     string // binaries of this repository
	proxyRootfs         string // pristine debootstrap of proxyPackages
	caFile              string // CA bundle for the tiny roots
	iptablesSelect      string // fixtures/kind/kube-proxy/iptables-select
	sandbox             string // containerd's sandbox_image, another name for pause
}

// controlPlaneImages builds every image kubeadm asks for (and tags it with kubeadm's name), plus
// the default CNI agent, and returns what to preload into the node.
func (b *builder) controlPlaneImages(ctx context.Context, p imageParts) ([]preload, error) {
	list, err := build.Output(ctx, exec.CommandContext(ctx, filepath.Join(p.kube, "kubeadm"),
		"config", "images", "list", "--kubernetes-version", KubernetesVersion))
	if err != nil {
		return nil, fmt.Errorf("list kubeadm images: %w", err)
	}
	plan, err := planImages(string(list))
	if err != nil {
		return nil, err
	}
	var out []preload
	for _, img := range plan {
		local := b.o.Image(img.repo, img.tag)
		refs := []string{img.ref}
		switch img.repo {
		case "kube-proxy":
			err = b.kubeProxyImage(ctx, local, p)
		case "pause":
			if p.sandbox != img.ref {
				refs = append(refs, p.sandbox)
			}
			err = b.staticImage(ctx, local, p.pause, "/pause", "", []string{"USER 65535:65535"})
		case "etcd":
			err = b.staticImage(ctx, local, filepath.Join(p.etcd, "etcd"), "/usr/local/bin/etcd", p.caFile, nil)
		case "coredns":
			err = b.staticImage(ctx, local, filepath.Join(p.coredns, "coredns"), "/coredns", p.caFile, nil)
		default: // kube-apiserver, kube-controller-manager, kube-scheduler
			err = b.staticImage(ctx, local, filepath.Join(p.kube, img.repo), "/usr/local/bin/"+img.repo, p.caFile, nil)
		}
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			if err := build.Run(ctx, b.o.Log, exec.CommandContext(ctx, "docker", "tag", local, ref)); err != nil {
				return nil, err
			}
		}
		out = append(out, preload{image: local, refs: refs})
	}
	agentHash, err := fileHash(p.cniAgent)
	if err != nil {
		return nil, err
	}
	agent := b.o.Image("kind-cni-agent", agentHash[:16])
	if err := b.staticImage(ctx, agent, p.cniAgent, "/usr/local/bin/cni-agent", "", nil); err != nil {
		return nil, err
	}
	return append(out, preload{image: agent, refs: []string{agent}}), nil
}

// staticImage builds an image holding one static binary at path (its entrypoint), on a tiny
// root when caFile is set and on nothing at all otherwise.
func (b *builder) staticImage(ctx context.Context, image, bin, path, caFile string, extra []string) error {
	ctxDir, err := os.MkdirTemp(filepath.Join(b.o.Cache, "work"), "image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	root := filepath.Join(ctxDir, "root")
	if caFile != "" {
		if err := tinyRoot(root, caFile); err != nil {
			return err
		}
	}
	if err := build.CopyFile(bin, filepath.Join(root, path), 0o755); err != nil {
		return err
	}
	instructions := append([]string{
		"ENV PATH=/usr/local/bin:/usr/bin:/bin",
		fmt.Sprintf("ENTRYPOINT [%q]", path),
	}, extra...)
	return b.scratchImage(ctx, image, root, instructions)
}

// kubeProxyImage puts kube-proxy on the Debian root (it drives iptables and nft), with
// iptables-select standing in for the iptables commands until it has picked the node's backend.
func (b *builder) kubeProxyImage(ctx context.Context, image string, p imageParts) error {
	proxyHash, err := fileHash(filepath.Join(p.kube, "kube-proxy"))
	if err != nil {
		return err
	}
	selectHash, err := fileHash(p.iptablesSelect)
	if err != nil {
		return err
	}
	inputs := build.Hash(recipe, filepath.Base(p.proxyRootfs), proxyHash, selectHash)
	if !b.o.Force && build.UpToDate(ctx, image, inputs) {
		b.o.Progress.Skip("image "+image, "up to date")
		return nil
	}
	return b.imageStep(ctx, image, func() error {
		work := filepath.Join(b.o.Cache, "work", "kube-proxy")
		if err := copyTree(ctx, p.proxyRootfs, work); err != nil {
			return err
		}
		defer build.RemoveTree(context.WithoutCancel(ctx), work)
		if err := build.CopyFile(filepath.Join(p.kube, "kube-proxy"), filepath.Join(work, "usr/local/bin/kube-proxy"), 0o755); err != nil {
			return err
		}
		if err := build.CopyFile(p.iptablesSelect, filepath.Join(work, "usr/local/sbin/iptables-select"), 0o755); err != nil {
			return err
		}
		for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
			if err := replaceSymlink("/usr/local/sbin/iptables-select", filepath.Join(work, "usr/sbin", name)); err != nil {
				return err
			}
		}
		for _, glob := range []string{"var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb", "usr/share/doc/*", "usr/share/man/*"} {
			matches, _ := filepath.Glob(filepath.Join(work, glob))
			for _, m := range matches {
				if err := os.RemoveAll(m); err != nil {
					return err
				}
			}
		}
		return build.ImportDir(ctx, b.o.Log, work, image, inputs, []string{
			"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			`ENTRYPOINT ["/usr/local/bin/kube-proxy"]`,
		})
	})
}
