package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// pinnedLabel keeps kubelet's image garbage collection away from preloaded images, which could
// never be pulled back here.
const pinnedLabel = "io.cri-containerd.pinned=pinned"

// nodeParts are what goes into the node image on top of the base.
type nodeParts struct {
	base     string
	kube     string    // directory with kubeadm, kubelet, kubectl
	preload  []preload // images for the node's containerd
	manifest map[string][]byte
}

// assembleNode makes the node image the way kind's node-image builder does, minus every pull: a
// container of the base image (sleeping instead of booting), the Kubernetes binaries and kind's
// /kind files copied in, the images imported into its containerd, and the container committed.
func (b *builder) assembleNode(ctx context.Context, image, inputs string, p nodeParts) error {
	name, err := containerName("pxec-node-build")
	if err != nil {
		return err
	}
	if err := b.docker(ctx, "run", "-d", "--name", name, "--entrypoint=sleep", p.base, "infinity"); err != nil {
		return err
	}
	// The build container goes away whatever happens, also when ctx was cancelled.
	defer b.docker(context.WithoutCancel(ctx), "rm", "-f", name)

	for _, bin := range []string{"kubeadm", "kubelet", "kubectl"} {
		if err := b.docker(ctx, "cp", filepath.Join(p.kube, bin), name+":/usr/bin/"+bin); err != nil {
			return err
		}
	}
	stage, err := os.MkdirTemp(filepath.Join(b.o.Cache, "work"), "kind-files-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for rel, data := range p.manifest {
		dst := filepath.Join(stage, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	if err := b.docker(ctx, "cp", stage+"/.", name+":/kind/"); err != nil {
		return err
	}
	if err := b.preloadImages(ctx, name, p.preload); err != nil {
		return err
	}
	return b.docker(ctx, "commit",
		"--change", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"--change", `CMD []`,
		"--change", "LABEL "+build.InputLabel+"="+inputs,
		name, image)
}

// preloadImages starts containerd inside the build container, imports the images without
// unpacking them (the CRI plugin unpacks on first use, and the build container needs no
// snapshotter mounts that way), pins them, and stops containerd again.
func (b *builder) preloadImages(ctx context.Context, container string, images []preload) error {
	if err := b.docker(ctx, "exec", "-d", container, "sh", "-c", "exec containerd >/var/log/pxec-preload-containerd.log 2>&1"); err != nil {
		return err
	}
	if err := b.waitExec(ctx, container, true, "ctr", "version"); err != nil {
		return fmt.Errorf("containerd in build container %s did not answer: %w", container, err)
	}
	var refs []string
	for _, img := range images {
		refs = append(refs, img.refs...)
	}
	save := exec.CommandContext(ctx, "docker", append([]string{"save"}, refs...)...)
	imp := exec.CommandContext(ctx, "docker", "exec", "-i", container,
		"ctr", "--namespace=k8s.io", "images", "import", "--no-unpack", "--all-platforms", "-")
	if err := pipe(ctx, b, save, imp); err != nil {
		return err
	}
	for _, ref := range refs {
		if err := b.docker(ctx, "exec", container, "ctr", "--namespace=k8s.io", "images", "label", normalizeRef(ref), pinnedLabel); err != nil {
			return err
		}
	}
	if err := b.docker(ctx, "exec", container, "pkill", "-x", "containerd"); err != nil {
		return err
	}
	if err := b.waitExec(ctx, container, false, "pgrep", "-x", "containerd"); err != nil {
		return fmt.Errorf("containerd in build container %s did not stop: %w", container, err)
	}
	return b.docker(ctx, "exec", container, "sh", "-c", "rm -rf /run/containerd /var/log/pxec-preload-containerd.log /tmp/* /var/tmp/*")
}

// normalizeRef spells a reference the way containerd stores it: docker.io/library/ for bare names.
func normalizeRef(ref string) string {
	first, _, hasSlash := strings.Cut(ref, "/")
	if !hasSlash {
		return "docker.io/library/" + ref
	}
	if !strings.ContainsAny(first, ".:") && first != "localhost" {
		return "docker.io/" + ref
	}
	return ref
}

// pipe runs src | dst, streaming dst's output to the log; errors name the whole pipeline.
func pipe(ctx context.Context, b *builder, src, dst *exec.Cmd) error {
	out, err := src.StdoutPipe()
	if err != nil {
		return err
	}
	src.Stderr = b.o.Log
	dst.Stdin = out
	if err := src.Start(); err != nil {
		return &command.Error{Command: command.LineOf(src), Err: err}
	}
	runErr := build.Run(ctx, b.o.Log, dst)
	srcErr := src.Wait()
	if runErr != nil {
		return runErr
	}
	if srcErr != nil {
		return &command.Error{Command: command.LineOf(src) + " | " + command.LineOf(dst), Err: srcErr}
	}
	return nil
}

// waitExec runs argv in container every half second until it succeeds (want true) or fails
// (want false), for up to 60 seconds.
func (b *builder) waitExec(ctx context.Context, container string, want bool, argv ...string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := build.Run(ctx, nil, exec.CommandContext(ctx, "docker", append([]string{"exec", container}, argv...)...))
		if (err == nil) == want {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still %v after 60s", strings.Join(argv, " "), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (b *builder) docker(ctx context.Context, args ...string) error {
	return build.Run(ctx, b.o.Log, exec.CommandContext(ctx, "docker", args...))
}

// containerName makes a unique name with the project prefix, so a leftover is recognisable.
func containerName(prefix string) (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return prefix + "-" + hex.EncodeToString(r[:]), nil
}

// imageStep builds image as a progress step, then removes the image it replaced, so rebuilds
// do not pile up untagged node images of a gigabyte each. Docker refuses while a container
// (a running kind node) or another tag still uses the old image, which then stays.
func (b *builder) imageStep(ctx context.Context, image string, fn func() error) error {
	old := imageID(ctx, image)
	if err := b.o.Progress.Step("image "+image, fn); err != nil {
		return err
	}
	if old != "" && old != imageID(ctx, image) {
		_ = build.Run(ctx, b.o.Log, exec.CommandContext(ctx, "docker", "rmi", old))
	}
	return nil
}

// imageID is the local image's ID, "" when it does not exist.
func imageID(ctx context.Context, image string) string {
	out, err := build.Output(ctx, exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", image))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
