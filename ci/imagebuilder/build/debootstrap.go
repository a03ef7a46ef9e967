package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Debootstrap is one minbase Debian root made by debootstrap.
type Debootstrap struct {
	Step    string   // the progress step's name
	Dir     string   // where the finished root goes; it is never changed after that
	Suite   string   // bookworm, trixie, ...
	Mirror  string   // the archive; "" for DebianMirror's, asked only when the root is made
	Include []string // packages added to minbase
	// CacheDir keeps the downloaded .debs for the next debootstrap of Suite ("" for none).
	CacheDir string
}

// Run makes the root unless Dir exists. It builds into Dir+".tmp", renamed at the end, so an
// interrupted run never leaves a root that looks finished; what an interrupted run left (with
// /proc or /sys still mounted in it) is removed first, unmounted before it is deleted.
func (d Debootstrap) Run(ctx context.Context, o Options) error {
	if _, err := os.Stat(d.Dir); err == nil {
		o.Progress.Skip(d.Step, "up to date in "+d.Dir)
		return nil
	}
	return o.Progress.Step(d.Step, func() error {
		tmp := d.Dir + ".tmp"
		if err := RemoveTree(ctx, tmp); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
			return err
		}
		mirror := d.Mirror
		if mirror == "" {
			var err error
			if mirror, err = DebianMirror(); err != nil {
				return err
			}
		}
		args := []string{"--variant=minbase"}
		if len(d.Include) > 0 {
			args = append(args, "--include="+strings.Join(d.Include, ","))
		}
		if d.CacheDir != "" {
			if err := os.MkdirAll(d.CacheDir, 0o755); err != nil {
				return err
			}
			args = append(args, "--cache-dir="+d.CacheDir)
		}
		args = append(args, d.Suite, tmp, mirror)
		if err := Run(ctx, o.Log, exec.CommandContext(ctx, "debootstrap", args...)); err != nil {
			_ = RemoveTree(context.WithoutCancel(ctx), tmp)
			return err
		}
		return os.Rename(tmp, d.Dir)
	})
}

// RemoveTree deletes dir after unmounting everything mounted at or below it, deepest first (a
// debootstrap or chroot install killed midway leaves /proc, /sys or a package cache mounted in
// its target), so the removal never reaches into the host's filesystems.
func RemoveTree(ctx context.Context, dir string) error {
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		return nil
	}
	if err := UnmountUnder(ctx, dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// UnmountUnder unmounts every mount point at or below dir, deepest first (lazily: a busy one
// goes once its last user does).
func UnmountUnder(ctx context.Context, dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := Run(ctx, nil, exec.CommandContext(ctx, "umount", "-l", p)); err != nil {
			return err
		}
	}
	return nil
}
