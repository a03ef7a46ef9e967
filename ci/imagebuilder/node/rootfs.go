package node

import (
	"context"
	"fmt"
	"os"
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
	include := strings.Join(pkgs, ",")
	dir := filepath.Join(b.cache, "rootfs", debianSuite+"-"+name+"-"+build.Hash(debianSuite, "minbase", include))
	step := "debootstrap " + debianSuite + " (" + name + ")"
	if _, err := os.Stat(dir + ".complete"); err == nil {
		b.progress.Skip(step, "up to date in "+dir)
		return dir, nil
	}
	mirror, err := build.DebianMirror()
	if err != nil {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	err = b.progress.Step(step, func() error {
		tmp := dir + ".tmp"
		if err := removeTree(ctx, tmp); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+include,
			debianSuite, tmp, mirror)
		if err := build.Run(ctx, b.log, cmd); err != nil {
			_ = removeTree(context.WithoutCancel(ctx), tmp)
			return err
		}
		if err := removeTree(ctx, dir); err != nil {
			return err
		}
		if err := os.Rename(tmp, dir); err != nil {
			return err
		}
		return os.WriteFile(dir+".complete", []byte(include+"\n"), 0o644)
	})
	return dir, err
}

// removeTree deletes dir after unmounting anything still mounted below it (an interrupted
// debootstrap can leave /proc and /sys mounted in its target), so the removal never reaches
// into the host's pseudo filesystems.
func removeTree(ctx context.Context, dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	var below []string
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			below = append(below, f[1])
		}
	}
	// Deepest first, so nested mounts come off before their parents.
	sort.Sort(sort.Reverse(sort.StringSlice(below)))
	for _, m := range below {
		if err := build.Run(ctx, nil, exec.CommandContext(ctx, "umount", "-l", m)); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// copyTree copies a root filesystem with owners, modes, links, devices and xattrs intact.
func copyTree(ctx context.Context, src, dst string) error {
	if err := removeTree(ctx, dst); err != nil {
		return err
	}
	return build.Run(ctx, nil, exec.CommandContext(ctx, "cp", "-a", src, dst))
}
