package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
)

// pxeServerPackage is the PXE server's main package in this repository.
const pxeServerPackage = "./fixtures/pxe-server"

// pxeServer builds pxec.local/pxe-server: busybox-static, Debian's iPXE boot files and the
// PXE server binary. The guest payload is not baked in; see the package documentation.
func (b *builder) pxeServer(ctx context.Context) (string, error) {
	name := PXEServerImage(b.o)
	if err := b.hasGoFiles(pxeServerPackage); err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	srcHash, err := b.localHash(ctx, pxeServerPackage)
	if err != nil {
		return "", err
	}
	pkgs, debs, err := b.debs(ctx, "busybox-static", "ipxe")
	if err != nil {
		return "", err
	}
	inputs := build.Hash(recipe, "pxe-server", runtime.Version(), srcHash, pkgs["busybox-static"].Pin(), pkgs["ipxe"].Pin())
	instructions := []string{
		"WORKDIR /srv/pxe",
		`ENTRYPOINT ["/usr/bin/pxe-server"]`,
	}
	err = b.image(ctx, name, inputs, instructions, func(root string) error {
		if err := b.busybox(ctx, root, debs["busybox-static"]); err != nil {
			return err
		}
		if err := b.ipxeFiles(ctx, root, debs["ipxe"]); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, "srv/pxe"), 0o755); err != nil {
			return err
		}
		// Root's entries let busybox tools and the server name uid 0 in messages.
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644); err != nil {
			return err
		}
		return build.BuildLocal(ctx, b.o, b.repo, pxeServerPackage, filepath.Join(root, "usr/bin/pxe-server"))
	})
	return name, err
}

// hasGoFiles refuses a package directory without Go files, with a plain message rather than
// go build's.
func (b *builder) hasGoFiles(pkg string) error {
	matches, _ := filepath.Glob(filepath.Join(b.repo, pkg, "*.go"))
	if len(matches) == 0 {
		return fmt.Errorf("%s holds no Go source yet", pkg)
	}
	return nil
}

// debs pins each package to apt's candidate and returns it with its .deb, checked against the
// archive index's SHA-256, by name: framework/bootimage's Fetch, so the image's iPXE is pinned
// and hashed as the guest payload's is (the host's apt sources; no registry involved). The
// files are shared with the payload's in the cache's debs folder.
func (b *builder) debs(ctx context.Context, names ...string) (map[string]bootimage.Package, map[string]string, error) {
	var pkgs map[string]bootimage.Package
	var paths map[string]string
	err := b.o.Progress.Step("pin and fetch "+strings.Join(names, " "), func() error {
		logf := func(format string, args ...any) { fmt.Fprintf(b.o.Log, format+"\n", args...) }
		var err error
		pkgs, paths, err = bootimage.Fetch(ctx, filepath.Join(b.o.Cache, "debs"), logf, names...)
		return err
	})
	return pkgs, paths, err
}

// unpackDeb extracts a package's files into a fresh directory under the work directory.
func (b *builder) unpackDeb(ctx context.Context, deb string) (string, error) {
	dir := filepath.Join(b.work, "unpacked", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := build.Run(ctx, b.o.Log, exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir)); err != nil {
		return "", err
	}
	return dir, nil
}

// busybox installs busybox-static as /bin/busybox with a link for each applet it lists.
func (b *builder) busybox(ctx context.Context, root, deb string) error {
	dir, err := b.unpackDeb(ctx, deb)
	if err != nil {
		return err
	}
	bin := filepath.Join(root, "bin/busybox")
	if err := build.CopyFile(filepath.Join(dir, "bin/busybox"), bin, 0o755); err != nil {
		return err
	}
	// The static binary runs on the build host too; it knows where each applet belongs.
	out, err := build.Output(ctx, exec.CommandContext(ctx, bin, "--list-full"))
	if err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "bin/busybox" {
			continue
		}
		link := filepath.Join(root, applet)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			return err
		}
	}
	return nil
}

// ipxeFiles copies the iPXE binaries for firmware without iPXE of its own into /usr/lib/ipxe
// (Debian's place), resolving Debian's link from ipxe.efi to /boot.
func (b *builder) ipxeFiles(ctx context.Context, root, deb string) error {
	dir, err := b.unpackDeb(ctx, deb)
	if err != nil {
		return err
	}
	files := map[string]string{
		"undionly.kpxe": filepath.Join(dir, "usr/lib/ipxe/undionly.kpxe"),
		"ipxe.efi":      filepath.Join(dir, "boot/ipxe.efi"),
	}
	for name, src := range files {
		if err := build.CopyFile(src, filepath.Join(root, "usr/lib/ipxe", name), 0o644); err != nil {
			return err
		}
	}
	return nil
}
