package node

import (
	"context"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// debootstrap makes (or finds) a minbase root filesystem of debianSuite with packages, under
// rootfs/ in the cache, keyed by suite and package list. The directory is never modified after
// it is made: images are assembled from copies.
func (b *builder) debootstrap(ctx context.Context, name string, packages []string) (string, error) {
	pkgs := append([]string(nil), packages...)
	sort.Strings(pkgs)
	dir := filepath.Join(b.o.Cache, "rootfs", debianSuite+"-"+name+"-"+build.Hash(debianSuite, "minbase", strings.Join(pkgs, ",")))
	d := build.Debootstrap{Step: "debootstrap " + debianSuite + " (" + name + ")", Dir: dir, Suite: debianSuite, Include: pkgs}
	return dir, d.Run(ctx, build.Options{Progress: b.o.Progress, Log: b.o.Log})
}

// copyTree copies a root filesystem with owners, modes, links, devices and xattrs intact.
func copyTree(ctx context.Context, src, dst string) error {
	if err := build.RemoveTree(ctx, dst); err != nil {
		return err
	}
	return build.Run(ctx, nil, exec.CommandContext(ctx, "cp", "-a", src, dst))
}
