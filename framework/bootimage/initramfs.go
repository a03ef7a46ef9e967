package bootimage

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/fixtures/guest"
)

// assemble fetches and unpacks the plan's packages and writes the payload's
// outputs into dir. The manifest it returns lacks Key and GuestSHA256.
func (b *builder) assemble(ctx context.Context, p plan, files []guest.File, applets []string, dir string) (Manifest, error) {
	m := Manifest{Packages: p.all()}
	debs, err := b.apt.download(ctx, b.debsDir(), p.all())
	if err != nil {
		return m, err
	}
	unpack := func(pkg Package) (string, error) {
		d := filepath.Join(b.unpackedDir(), pkg.unpackName())
		if err := os.MkdirAll(b.unpackedDir(), 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", b.unpackedDir(), err)
		}
		return d, unpackDeb(ctx, debs[pkg.Name], d)
	}
	busybox, err := unpack(p.Busybox)
	if err != nil {
		return m, err
	}
	var dropbearRoots []string
	for _, pkg := range p.Dropbear {
		d, err := unpack(pkg)
		if err != nil {
			return m, err
		}
		dropbearRoots = append(dropbearRoots, d)
	}
	ipxe, err := unpack(p.IPXE)
	if err != nil {
		return m, err
	}
	kp, err := extractKernel(ctx, debs[p.Kernel.Name], b.modules)
	if err != nil {
		return m, err
	}
	m.KernelRelease = kp.Release
	m.BuiltinModules = kp.Builtin

	a := newArchive()
	if err := addBase(a); err != nil {
		return m, err
	}
	if err := addPrograms(a, rootView{roots: []string{busybox}}, "bin/busybox"); err != nil {
		return m, fmt.Errorf("add busybox: %w", err)
	}
	for _, ap := range applets {
		if err := a.add(cpioEntry{Path: ap, Kind: kindSymlink, Data: []byte(relLink(ap, "bin/busybox"))}); err != nil {
			return m, err
		}
	}
	if err := addPrograms(a, rootView{roots: dropbearRoots}, "usr/sbin/dropbear", "usr/bin/dropbearkey"); err != nil {
		return m, fmt.Errorf("add dropbear: %w", err)
	}
	var list strings.Builder
	for _, mod := range kp.Modules {
		if err := a.add(cpioEntry{Path: mod.Path, Kind: kindFile, Perm: 0o644, Data: mod.Data}); err != nil {
			return m, err
		}
		list.WriteString("/" + mod.Path + "\n")
		m.Modules = append(m.Modules, mod.Name)
	}
	if err := a.add(cpioEntry{Path: guest.ModuleListPath, Kind: kindFile, Perm: 0o644, Data: []byte(list.String())}); err != nil {
		return m, err
	}
	for _, f := range files {
		if err := a.add(cpioEntry{Path: f.Path, Kind: kindFile, Perm: uint32(f.Mode.Perm()), Data: f.Data}); err != nil {
			return m, err
		}
	}

	var initrd bytes.Buffer
	if err := a.writeGzip(&initrd); err != nil {
		return m, fmt.Errorf("write initramfs: %w", err)
	}
	outputs := []struct {
		name string
		data func() ([]byte, error)
	}{
		{KernelFile, func() ([]byte, error) { return kp.Vmlinuz, nil }},
		{InitrdFile, func() ([]byte, error) { return initrd.Bytes(), nil }},
		{UndionlyFile, func() ([]byte, error) {
			return readResolved(rootView{roots: []string{ipxe}}, "usr/lib/ipxe/undionly.kpxe")
		}},
		{IPXEEFIFile, func() ([]byte, error) { return readResolved(rootView{roots: []string{ipxe}}, "usr/lib/ipxe/ipxe.efi") }},
	}
	for _, o := range outputs {
		data, err := o.data()
		if err != nil {
			return m, fmt.Errorf("make %s: %w", o.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, o.name), data, 0o644); err != nil {
			return m, fmt.Errorf("write %s: %w", o.name, err)
		}
		sum, size, err := fileSHA256(filepath.Join(dir, o.name))
		if err != nil {
			return m, err
		}
		m.Outputs = append(m.Outputs, Output{Name: o.name, Size: size, SHA256: sum})
	}
	return m, nil
}

// addBase adds what the kernel and the init need before anything is mounted:
// mount points, root's home, and /dev/console, without which the kernel
// starts /init with no stdin, stdout or stderr.
func addBase(a *archive) error {
	entries := []cpioEntry{
		{Path: "dev", Kind: kindDir, Perm: 0o755},
		{Path: "dev/console", Kind: kindCharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "proc", Kind: kindDir, Perm: 0o755},
		{Path: "sys", Kind: kindDir, Perm: 0o755},
		{Path: "run", Kind: kindDir, Perm: 0o755},
		{Path: "tmp", Kind: kindDir, Perm: 0o1777},
		{Path: "root", Kind: kindDir, Perm: 0o700},
		{Path: "var", Kind: kindDir, Perm: 0o755},
		{Path: "var/run", Kind: kindSymlink, Data: []byte("../run")},
	}
	for _, e := range entries {
		if err := a.add(e); err != nil {
			return err
		}
	}
	return nil
}

// addPrograms adds programs and everything they load (interpreter, libraries
// and the symlinks that name them), found in the view's packages.
func addPrograms(a *archive, v rootView, programs ...string) error {
	files, err := v.elfClosure(programs)
	if err != nil {
		return err
	}
	for _, p := range sortedKeys(files.Files) {
		host := files.Files[p]
		fi, err := os.Stat(host)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(host)
		if err != nil {
			return err
		}
		if err := a.add(cpioEntry{Path: p, Kind: kindFile, Perm: normPerm(fi.Mode()), Data: data}); err != nil {
			return err
		}
	}
	for _, p := range sortedKeys(files.Links) {
		if err := a.add(cpioEntry{Path: p, Kind: kindSymlink, Data: []byte(files.Links[p])}); err != nil {
			return err
		}
	}
	return nil
}

// normPerm reduces a packaged file's mode to 0755 or 0644, so the initramfs
// does not depend on how the unpacking host treated permissions.
func normPerm(m fs.FileMode) uint32 {
	if m.Perm()&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// readResolved reads a file of a view, following symlinks inside it.
func readResolved(v rootView, p string) ([]byte, error) {
	r, err := v.resolve(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(r.Host)
}
