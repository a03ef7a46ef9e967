package kubevirt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// imageSpec is one component image: files copied into a base image, plus Dockerfile lines.
type imageSpec struct {
	Name  string
	Base  string
	Files []imageFile
	Lines []string // after the COPY lines: RUN, USER, ENTRYPOINT
}

// imageFile is one file of an image: its source on this machine, where it goes, its mode.
type imageFile struct {
	From, To string
	Mode     os.FileMode
}

// imageSpecs describes every image the way KubeVirt's own image rules lay them out
// (cmd/*/BUILD.bazel): binaries in /usr/bin, the operator, API, controller and export
// components as user 1001,
// virt-launcher as qemu (107) with libvirt's configuration and hook. The stock virt-handler and
// virt-exportserver come from undeployed, when it is not nil.
func imageSpecs(src source, bins binaries, undeployed *binaries, handler binaries, r roots, names Images) []imageSpec {
	bin := func(b binaries, name string) imageFile {
		return imageFile{From: b.Path(name), To: "/usr/bin/" + name, Mode: 0o755}
	}
	launcherFile := func(name, to string, mode os.FileMode) imageFile {
		return imageFile{From: filepath.Join(src.Dir, "cmd", "virt-launcher", name), To: to, Mode: mode}
	}
	goOnly := func(image, name string) imageSpec {
		return imageSpec{
			Name:  image,
			Base:  r.Tiny,
			Files: []imageFile{bin(bins, name)},
			Lines: []string{fmt.Sprintf("USER %d", nonrootUID), fmt.Sprintf("ENTRYPOINT [\"/usr/bin/%s\"]", name)},
		}
	}
	handlerImage := func(image string, b binaries) imageSpec {
		return imageSpec{
			Name:  image,
			Base:  r.Virt,
			Files: []imageFile{bin(b, "virt-handler"), bin(bins, "virt-chroot")},
			Lines: []string{`ENTRYPOINT ["/usr/bin/virt-handler"]`},
		}
	}
	specs := []imageSpec{
		goOnly(names.Operator, "virt-operator"),
		goOnly(names.API, "virt-api"),
		goOnly(names.Controller, "virt-controller"),
		goOnly(names.ExportProxy, "virt-exportproxy"),
		handlerImage(names.HandlerNoDummy, handler),
		{
			Name: names.Launcher,
			Base: r.Virt,
			Files: []imageFile{
				bin(bins, "virt-launcher"), bin(bins, "virt-launcher-monitor"), bin(bins, "virt-freezer"),
				bin(bins, "virt-probe"), bin(bins, "virt-tail"), bin(bins, "container-disk"),
				bin(bins, "libvirt-hook-client"),
				launcherFile("node-labeller/node-labeller.sh", "/usr/bin/node-labeller.sh", 0o755),
				launcherFile("qemu.conf", "/etc/libvirt/qemu.conf", 0o644),
				launcherFile("virtqemud.conf", "/etc/libvirt/virtqemud.conf", 0o644),
				launcherFile("qemu", "/etc/libvirt/hooks/qemu", 0o755),
			},
			Lines: []string{
				// virt-launcher (as qemu) replaces the hook script with libvirt-hook-client, so
				// the hooks directory is qemu's, as in upstream's image.
				// virt-launcher looks for OVMF in /usr/share/edk2/ovmf (its --ovmf-path default,
				// the CentOS place); Debian keeps it in /usr/share/OVMF.
				fmt.Sprintf("RUN chown -R %d:%d /etc/libvirt/hooks && setcap cap_net_bind_service+ep /usr/bin/virt-launcher-monitor"+
					" && mkdir -p /usr/share/edk2 && ln -sfn /usr/share/OVMF /usr/share/edk2/ovmf", qemuUID, qemuUID),
				fmt.Sprintf("USER %d", qemuUID),
				`ENTRYPOINT ["/usr/bin/virt-launcher"]`,
			},
		},
	}
	if undeployed == nil {
		return specs
	}
	return append(specs,
		handlerImage(names.Handler, *undeployed),
		// Upstream's export server base carries qemu-img; the trixie root has it (qemu-utils).
		imageSpec{
			Name:  names.ExportServer,
			Base:  r.Virt,
			Files: []imageFile{bin(*undeployed, "virt-exportserver")},
			Lines: []string{fmt.Sprintf("USER %d", nonrootUID), `ENTRYPOINT ["/usr/bin/virt-exportserver"]`},
		})
}

// dockerfile renders the spec; files sit in the build context under ctx/<index>.
func (s imageSpec) dockerfile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", s.Base)
	for i, f := range s.Files {
		fmt.Fprintf(&b, "COPY ctx/%d %s\n", i, f.To)
	}
	for _, l := range s.Lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// buildImages builds each component image unless one with the same inputs exists.
func buildImages(ctx context.Context, o build.Options, src source, bins binaries, undeployed *binaries, handler binaries, r roots, names Images) error {
	for _, s := range imageSpecs(src, bins, undeployed, handler, r, names) {
		df := s.dockerfile()
		parts := []string{df, r.TinyInputs, r.VirtInputs}
		for _, f := range s.Files {
			data, err := os.ReadFile(f.From)
			if err != nil {
				return fmt.Errorf("image %s: %w", s.Name, err)
			}
			parts = append(parts, fmt.Sprintf("%s %o", f.To, f.Mode), string(data))
		}
		inputs := build.Hash(parts...)
		if !o.Force && build.UpToDate(ctx, s.Name, inputs) {
			o.Progress.Skip("image "+s.Name, "up to date")
			continue
		}
		err := o.Progress.Step("image "+s.Name, func() error {
			dir, err := os.MkdirTemp(o.Cache, "pxec-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			for i, f := range s.Files {
				// Files in the module cache are read-only (0444); images need their own modes.
				data, err := os.ReadFile(f.From)
				if err != nil {
					return err
				}
				p := filepath.Join(dir, "ctx", fmt.Sprint(i))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, data, f.Mode); err != nil {
					return err
				}
				if err := os.Chmod(p, f.Mode); err != nil {
					return err
				}
			}
			return build.BuildDockerfile(ctx, o.Log, df, dir, s.Name, inputs)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
