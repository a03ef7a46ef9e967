package kubevirt

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvfixtures "github.com/pxe-conformance/pxe-conformance/fixtures/kubevirt"
)

// suite is the Debian release under virt-handler and virt-launcher. Bookworm's libvirt 9.0
// lacks the modular daemons KubeVirt starts; trixie has libvirt 11.3, QEMU 10.0, OVMF 2025.02.
const suite = "trixie"

// virtPackages are installed into the trixie root shared by virt-handler and virt-launcher.
func virtPackages() []string {
	return []string{
		"libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-daemon-log", "libvirt-clients",
		"qemu-system-x86", "qemu-utils", "ovmf", "ipxe-qemu", "seabios", "passt",
		"nftables", "iptables", "iproute2", "procps", "util-linux", "libcap2-bin", "xorriso",
		"ca-certificates",
	}
}

// The users KubeVirt's images have: qemu (107) runs virt-launcher and QEMU; nonroot-user
// (1001) runs virt-operator, virt-api and virt-controller.
const (
	qemuUID    = 107
	nonrootUID = 1001
)

// roots are the base images the component images start from.
type roots struct {
	Tiny, Virt             string // image names
	TinyInputs, VirtInputs string
}

// buildBases makes the trixie root with libvirt and QEMU and the tiny root, each imported as
// a local image, both cached by their inputs.
func buildBases(ctx context.Context, o build.Options) (roots, error) {
	mirror, err := build.DebianMirror()
	if err != nil {
		return roots{}, err
	}
	shim, err := fs.ReadFile(kvfixtures.Files(), kvfixtures.VirtqemudShim)
	if err != nil {
		return roots{}, fmt.Errorf("read %s: %w", kvfixtures.VirtqemudShim, err)
	}
	minInputs := build.Hash("debootstrap", "minbase", suite, mirror)
	virtInputs := build.Hash(minInputs, strings.Join(virtPackages(), " "), string(shim), "fixups-2")
	tinyInputs := build.Hash(virtInputs, "tiny-2")
	r := roots{
		Virt: o.Image("kubevirt/base-"+suite+"-virt", virtInputs), VirtInputs: virtInputs,
		Tiny: o.Image("kubevirt/base-tiny", tinyInputs), TinyInputs: tinyInputs,
	}
	virtUpToDate := !o.Force && build.UpToDate(ctx, r.Virt, virtInputs)
	tinyUpToDate := !o.Force && build.UpToDate(ctx, r.Tiny, tinyInputs)
	if virtUpToDate && tinyUpToDate {
		o.Progress.Skip("kubevirt base images", "up to date")
		return r, nil
	}
	minDir := filepath.Join(o.Cache, "rootfs", suite+"-minbase-"+minInputs)
	d := build.Debootstrap{Step: "debootstrap --variant=minbase " + suite, Dir: minDir, Suite: suite, Mirror: mirror,
		CacheDir: filepath.Join(o.Cache, "debootstrap-cache", suite)}
	if err := d.Run(ctx, o); err != nil {
		return r, err
	}
	virtDir := filepath.Join(o.Cache, "rootfs", suite+"-virt-"+virtInputs)
	if err := installVirt(ctx, o, minDir, virtDir, shim); err != nil {
		return r, err
	}
	if !virtUpToDate {
		err := o.Progress.Step("import "+r.Virt, func() error {
			return build.ImportDir(ctx, o.Log, virtDir, r.Virt, virtInputs, nil)
		})
		if err != nil {
			return r, err
		}
	}
	if !tinyUpToDate {
		err := o.Progress.Step("import "+r.Tiny, func() error {
			tinyDir, err := os.MkdirTemp(o.Cache, "pxec-tiny-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tinyDir)
			if err := makeTinyRoot(ctx, o, virtDir, tinyDir); err != nil {
				return err
			}
			return build.ImportDir(ctx, o.Log, tinyDir, r.Tiny, tinyInputs, nil)
		})
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// installVirt copies the minbase root to dir and installs virtPackages into it, then applies
// the fixes KubeVirt needs on a Debian root.
func installVirt(ctx context.Context, o build.Options, minDir, dir string, shim []byte) error {
	if _, err := os.Stat(dir); err == nil {
		o.Progress.Skip("install libvirt and QEMU into "+suite, "cached in "+dir)
		return nil
	}
	return o.Progress.Step("install libvirt and QEMU into "+suite+" (apt-get in a chroot)", func() error {
		tmp := dir + ".tmp"
		// A run killed mid-install leaves /proc and the package cache mounted in tmp.
		if err := build.RemoveTree(ctx, tmp); err != nil {
			return err
		}
		if err := build.Run(ctx, o.Log, exec.CommandContext(ctx, "cp", "-a", minDir, tmp)); err != nil {
			return err
		}
		if err := aptInstall(ctx, o, tmp, virtPackages()); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		if err := fixVirtRoot(ctx, o, tmp, shim); err != nil {
			os.RemoveAll(tmp)
			return err
		}
		return os.Rename(tmp, dir)
	})
}

// aptInstall runs apt-get install inside the root with /proc mounted, downloaded packages kept
// in the cache, and a policy-rc.d that keeps maintainer scripts from starting services.
func aptInstall(ctx context.Context, o build.Options, root string, pkgs []string) (err error) {
	archives := filepath.Join(o.Cache, "apt-archives", suite)
	if err := os.MkdirAll(filepath.Join(archives, "partial"), 0o755); err != nil {
		return err
	}
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), resolv, 0o644); err != nil {
		return err
	}
	var mounted []string
	defer func() {
		// Unmount even when ctx was cancelled (Ctrl-C): a leftover mount pins the root.
		for i := len(mounted) - 1; i >= 0; i-- {
			cmd := exec.Command("umount", mounted[i])
			if uerr := build.Run(context.Background(), o.Log, cmd); uerr != nil && err == nil {
				err = uerr
			}
		}
	}()
	mounts := [][]string{
		{"-t", "proc", "proc", filepath.Join(root, "proc")},
		{"--bind", archives, filepath.Join(root, "var/cache/apt/archives")},
	}
	for _, m := range mounts {
		if err := build.Run(ctx, o.Log, exec.CommandContext(ctx, "mount", m...)); err != nil {
			return err
		}
		mounted = append(mounted, m[len(m)-1])
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	chroot := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...)
		cmd.Env = env
		return cmd
	}
	if err := build.Run(ctx, o.Log, chroot("apt-get", "update")); err != nil {
		return err
	}
	install := append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, pkgs...)
	if err := build.Run(ctx, o.Log, chroot(install...)); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"groupadd", "--gid", fmt.Sprint(qemuUID), "qemu"},
		{"useradd", "--uid", fmt.Sprint(qemuUID), "--gid", fmt.Sprint(qemuUID), "--no-create-home", "--home-dir", "/", "--shell", "/bin/bash", "qemu"},
	} {
		if err := build.Run(ctx, o.Log, chroot(c...)); err != nil {
			return err
		}
	}
	return nil
}

// fixVirtRoot applies what KubeVirt expects of its root filesystem and Debian does differently.
func fixVirtRoot(ctx context.Context, o build.Options, root string, shim []byte) error {
	for _, p := range []string{"usr/sbin/policy-rc.d", "etc/resolv.conf"} {
		if err := os.Remove(filepath.Join(root, p)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	for _, d := range []string{"var/lib/apt/lists", "var/cache/apt/archives"} {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			if e.Name() == "partial" || e.Name() == "lock" {
				continue
			}
			if err := os.RemoveAll(filepath.Join(root, d, e.Name())); err != nil {
				return err
			}
		}
	}
	// virt-handler reaches the launcher's files through /proc/<pid>/root/var/run/...; an
	// absolute /var/run -> /run link would resolve in virt-handler's own root (the serial
	// console then fails with "websocket: bad handshake").
	for link, target := range map[string]string{"var/run": "../run", "var/lock": "../run/lock"} {
		p := filepath.Join(root, link)
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/virtqemud")); os.IsNotExist(err) {
		if err := os.WriteFile(filepath.Join(root, "usr/sbin/virtqemud"), shim, 0o755); err != nil {
			return err
		}
	}
	// KubeVirt looks for OVMF_CODE(.secboot).fd and OVMF_VARS(.secboot).fd (in
	// /usr/share/edk2/ovmf, which the launcher image links here); Debian ships the 4 MiB builds
	// under _4M names.
	ovmf := filepath.Join(root, "usr/share/OVMF")
	for name, target := range map[string]string{
		"OVMF_CODE.fd":         "OVMF_CODE_4M.fd",
		"OVMF_VARS.fd":         "OVMF_VARS_4M.fd",
		"OVMF_CODE.secboot.fd": "OVMF_CODE_4M.secboot.fd",
		"OVMF_VARS.secboot.fd": "OVMF_VARS_4M.ms.fd",
	} {
		if _, err := os.Lstat(filepath.Join(ovmf, name)); err == nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(ovmf, target)); err != nil {
			return fmt.Errorf("OVMF in %s: %s missing: %w", suite, target, err)
		}
		if err := os.Symlink(target, filepath.Join(ovmf, name)); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib64/qemu-kvm"), 0o755); err != nil {
		return err
	}
	return nil
}

// makeTinyRoot fills dir with what KubeVirt's Go-only images need from a Debian root: the C
// library and loader, CA certificates, passwd and group with root and nonroot-user (1001).
func makeTinyRoot(ctx context.Context, o build.Options, from, dir string) error {
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/bin", "etc/ssl/certs", "tmp", "home/nonroot-user"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	for link, target := range map[string]string{"lib": "usr/lib", "lib64": "usr/lib64", "bin": "usr/bin"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			return err
		}
	}
	for _, f := range []string{
		"usr/lib/x86_64-linux-gnu/libc.so.6",
		"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"usr/lib/x86_64-linux-gnu/libpthread.so.0",
		"usr/lib/x86_64-linux-gnu/libdl.so.2",
		"usr/lib/x86_64-linux-gnu/libresolv.so.2",
		"usr/lib64/ld-linux-x86-64.so.2",
		"etc/ssl/certs/ca-certificates.crt",
		"etc/nsswitch.conf",
	} {
		// -L: Debian's files are often links into other directories; the tiny root gets files.
		cmd := exec.CommandContext(ctx, "cp", "-L", filepath.Join(from, f), filepath.Join(dir, f))
		if err := build.Run(ctx, o.Log, cmd); err != nil {
			return err
		}
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nnonroot-user:x:%d:%d:nonroot-user:/home/nonroot-user:/bin/sh\n", nonrootUID, nonrootUID)
	group := fmt.Sprintf("root:x:0:\nnonroot-user:x:%d:\n", nonrootUID)
	if err := os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/group"), []byte(group), 0o644); err != nil {
		return err
	}
	return os.Chown(filepath.Join(dir, "home/nonroot-user"), nonrootUID, nonrootUID)
}
