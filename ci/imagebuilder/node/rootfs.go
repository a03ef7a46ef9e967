package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// defaultMirror is used when the host's apt sources name no Debian mirror.
const defaultMirror = "http://deb.debian.org/debian"

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
	err := b.progress.Step(step, func() error {
		tmp := dir + ".tmp"
		if err := removeTree(ctx, tmp); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+include,
			debianSuite, tmp, mirror(b.aptSources()))
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

// aptSources returns the host's Debian sources (deb822 and one-line), for the mirror to use.
func (b *builder) aptSources() string {
	var all strings.Builder
	for _, p := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		if data, err := os.ReadFile(p); err == nil {
			all.Write(data)
			all.WriteString("\n")
		}
	}
	return all.String()
}

// mirror picks the Debian archive the host itself uses (not its security archive), so a
// machine that only reaches its own mirror can build; deb.debian.org when none is named.
func mirror(sources string) string {
	sc := bufio.NewScanner(strings.NewReader(sources))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uri string
		switch {
		case strings.HasPrefix(line, "URIs:"):
			if f := strings.Fields(strings.TrimPrefix(line, "URIs:")); len(f) > 0 {
				uri = f[0]
			}
		case strings.HasPrefix(line, "deb "):
			for _, f := range strings.Fields(line)[1:] {
				if strings.Contains(f, "://") {
					uri = f
					break
				}
			}
		}
		if uri != "" && !strings.Contains(uri, "security") {
			return strings.TrimSuffix(uri, "/")
		}
	}
	return defaultMirror
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
