package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
)

// baseParts are what the base image (everything but Kubernetes) is made from.
type baseParts struct {
	rootfs   string // pristine debootstrap of nodePackages
	kindBase string // images/base of the kind module
	crictl   string // directory holding crictl
	cni      string // directory holding the CNI plugins
	capdrop  string // the capdrop-runc binary
}

// baseImage imports the node root, with kind's base-image steps applied, as the base of the
// node image (kind's "kindest/base" made here instead of pulled).
func (b *builder) baseImage(ctx context.Context, p baseParts) (string, error) {
	image := b.o.Image("kind-base", debianSuite)
	filesHash, err := build.HashDir(filepath.Join(p.kindBase, "files"))
	if err != nil {
		return "", err
	}
	capdropHash, err := fileHash(p.capdrop)
	if err != nil {
		return "", err
	}
	// Cache entries are named by the hash of their inputs: their base names, not their paths,
	// identify the content, so another cache directory with the same content reuses the image.
	inputs := build.Hash(recipe, filepath.Base(p.rootfs), "kind "+KindVersion+" "+filesHash,
		filepath.Base(p.crictl), filepath.Base(p.cni), capdropHash)
	if !b.o.Force && build.UpToDate(ctx, image, inputs) {
		b.o.Progress.Skip("image "+image, "up to date")
		return image, nil
	}
	err = b.imageStep(ctx, image, func() error {
		work := filepath.Join(b.o.Cache, "work", "kind-base")
		if err := copyTree(ctx, p.rootfs, work); err != nil {
			return err
		}
		defer build.RemoveTree(context.WithoutCancel(ctx), work)
		if err := applyKindBase(ctx, work, filepath.Join(p.kindBase, "files")); err != nil {
			return err
		}
		if err := b.addRuntime(ctx, work, p); err != nil {
			return err
		}
		return build.ImportDir(ctx, b.o.Log, work, image, inputs, []string{
			"ENV container=docker",
			// systemd exits on SIGRTMIN+3; SIGTERM would make it re-execute.
			"STOPSIGNAL SIGRTMIN+3",
			`ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		})
	})
	return image, err
}

// applyKindBase does to root what kind's images/base Dockerfile does to debian-slim: its files
// (scripts 0755, the rest 0644), the systemd units it prunes and enables, journald without kmsg,
// /sbin/init, and the static pod directory.
func applyKindBase(ctx context.Context, root, files string) error {
	err := filepath.WalkDir(files, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(files, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/local/bin/") || strings.HasPrefix(rel, "kind/bin/") {
			mode = 0o755
		}
		return build.CopyFile(p, dst, mode)
	})
	if err != nil {
		return fmt.Errorf("copy kind base files from %s: %w", files, err)
	}
	// Units a container node must not start: kind removes these wants links.
	for _, glob := range []string{
		"lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
		"lib/systemd/system/multi-user.target.wants/*",
		"etc/systemd/system/*.wants/*",
		"lib/systemd/system/local-fs.target.wants/*",
		"lib/systemd/system/sockets.target.wants/*udev*",
		"lib/systemd/system/sockets.target.wants/*initctl*",
		"lib/systemd/system/basic.target.wants/*",
	} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			if err := os.Remove(m); err != nil {
				return fmt.Errorf("prune %s: %w", m, err)
			}
		}
	}
	if err := appendFile(filepath.Join(root, "etc/systemd/journald.conf"), "ReadKMsg=no\n"); err != nil {
		return err
	}
	if err := replaceSymlink("/usr/lib/systemd/systemd", filepath.Join(root, "sbin/init")); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"enable", "kubelet.service", "containerd.service", "undo-mount-hacks.service"},
		{"mask", "systemd-binfmt.service"},
	} {
		cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--root=" + root}, args...)...)
		if err := build.Run(ctx, nil, cmd); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(root, "etc/kubernetes/manifests"), 0o755)
}

// addRuntime puts in what kind builds itself and we take from Debian or build here: containerd
// (Debian's, in /usr/bin, linked where kind's unit runs it), its base OCI spec, crictl, the CNI
// plugins, and capdrop-runc as containerd's runc.
func (b *builder) addRuntime(ctx context.Context, root string, p baseParts) error {
	for _, bin := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		if _, err := os.Stat(filepath.Join(root, "usr/bin", bin)); err != nil {
			return fmt.Errorf("debian containerd: %w", err)
		}
		if err := replaceSymlink("/usr/bin/"+bin, filepath.Join(root, "usr/local/bin", bin)); err != nil {
			return err
		}
	}
	spec, err := build.Output(ctx, exec.CommandContext(ctx, "chroot", root, "ctr", "oci", "spec"))
	if err != nil {
		return fmt.Errorf("generate containerd base spec: %w", err)
	}
	spec, err = kindBaseSpec(spec)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/containerd/cri-base.json"), spec, 0o644); err != nil {
		return err
	}
	if err := build.CopyFile(filepath.Join(p.crictl, "crictl"), filepath.Join(root, "usr/local/bin/crictl"), 0o755); err != nil {
		return err
	}
	for name := range network.CNIPlugins().Bins {
		if err := build.CopyFile(filepath.Join(p.cni, name), filepath.Join(root, "opt/cni/bin", name), 0o755); err != nil {
			return err
		}
	}
	if err := build.CopyFile(p.capdrop, filepath.Join(root, "usr/local/bin/capdrop-runc"), 0o755); err != nil {
		return err
	}
	cfgPath := filepath.Join(root, "etc/containerd/config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	cfg, err = containerdConfig(cfg, "/usr/local/bin/capdrop-runc")
	if err != nil {
		return fmt.Errorf("edit %s: %w", cfgPath, err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return err
	}
	// What kind's clean-install removes after installing packages.
	for _, glob := range []string{"var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
		"var/log/*", "usr/share/doc/*", "usr/share/man/*", "tmp/*", "var/tmp/*"} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// kindBaseSpec adds kind's createContainer hook (per-container product_uuid) to containerd's
// default OCI spec and drops its rlimits, as kind's base image does.
func kindBaseSpec(spec []byte) ([]byte, error) {
	var s map[string]any
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("parse ctr oci spec: %w", err)
	}
	hooks, _ := s["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	cc, _ := hooks["createContainer"].([]any)
	hooks["createContainer"] = append(cc, map[string]any{"path": "/kind/bin/mount-product-files.sh"})
	s["hooks"] = hooks
	if proc, ok := s["process"].(map[string]any); ok {
		delete(proc, "rlimits")
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// containerdConfig edits kind's containerd config for hosts like ours: every runc runtime runs
// through the capdrop-runc wrapper (privileged pods ask for capabilities the host's bounding set
// lacks), and oom_score_adj is clamped (kubelet's -998 needs CAP_SYS_RESOURCE; without the
// clamp every sandbox fails with "can't get final child's PID from pipe: EOF").
func containerdConfig(cfg []byte, wrapper string) ([]byte, error) {
	systemdCgroupLine := regexp.MustCompile(`(?m)^(\s*)SystemdCgroup = true\s*$`)
	oomScoreAdjLine := regexp.MustCompile(`(?m)^(\s*)restrict_oom_score_adj = false\s*$`)
	if n := len(systemdCgroupLine.FindAll(cfg, -1)); n < 1 {
		return nil, fmt.Errorf("no runtime options with SystemdCgroup = true to add BinaryName to")
	}
	if !oomScoreAdjLine.Match(cfg) {
		return nil, fmt.Errorf("no restrict_oom_score_adj = false line to turn on")
	}
	cfg = systemdCgroupLine.ReplaceAll(cfg, []byte("${1}SystemdCgroup = true\n${1}BinaryName = \""+wrapper+"\""))
	cfg = oomScoreAdjLine.ReplaceAll(cfg, []byte("${1}restrict_oom_score_adj = true"))
	return cfg, nil
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}

func replaceSymlink(target, link string) error {
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.Symlink(target, link)
}
