package bootimage

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// libraryDirs returns the search path of Debian's x86-64 glibc loader when
// there is no ld.so.cache (the initramfs has none); `ld.so --help` prints it.
func libraryDirs() []string {
	return []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"}
}

// elfFiles is what an initramfs needs so that some programs run: regular
// files by canonical path (value: host path) and the symlinks that lead to
// them (value: link target).
type elfFiles struct {
	Files map[string]string
	Links map[string]string
}

// elfClosure resolves programs (paths in the union) to the programs, their
// ELF interpreter and every DT_NEEDED library, recursively, searching the
// library directories as the loader does. A missing library is an error that
// names it and the file that needs it.
func (v rootView) elfClosure(programs []string) (*elfFiles, error) {
	out := &elfFiles{Files: map[string]string{}, Links: map[string]string{}}
	type item struct{ path, neededBy string }
	queue := make([]item, 0, len(programs))
	for _, p := range programs {
		queue = append(queue, item{path: p})
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		r, err := v.resolve(it.path)
		if err != nil {
			if it.neededBy != "" {
				return nil, fmt.Errorf("ELF interpreter of /%s: %w", it.neededBy, err)
			}
			return nil, err
		}
		if !r.Info.Mode().IsRegular() {
			return nil, fmt.Errorf("/%s is not a regular file", r.Path)
		}
		for _, l := range r.Links {
			out.Links[l.Path] = l.Target
		}
		if _, done := out.Files[r.Path]; done {
			continue
		}
		out.Files[r.Path] = r.Host
		deps, err := readELFDeps(r.Host)
		if err != nil {
			return nil, fmt.Errorf("read ELF dependencies of /%s: %w", r.Path, err)
		}
		if deps.interp != "" {
			queue = append(queue, item{path: deps.interp, neededBy: r.Path})
		}
		for _, lib := range deps.needed {
			lp, err := v.findLibrary(lib, deps)
			if err != nil {
				return nil, fmt.Errorf("library %s needed by /%s: %w", lib, r.Path, err)
			}
			queue = append(queue, item{path: lp})
		}
	}
	return out, nil
}

// elfDeps is what the dynamic loader reads from one ELF file.
type elfDeps struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	runpath []string
}

func readELFDeps(hostPath string) (elfDeps, error) {
	f, err := elf.Open(hostPath)
	if err != nil {
		return elfDeps{}, err
	}
	defer f.Close()
	d := elfDeps{class: f.Class, machine: f.Machine}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return d, fmt.Errorf("read PT_INTERP: %w", err)
		}
		d.interp = strings.TrimRight(string(b), "\x00")
	}
	if f.Section(".dynamic") == nil {
		return d, nil // statically linked
	}
	if d.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return d, fmt.Errorf("read DT_NEEDED: %w", err)
	}
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		vals, err := f.DynString(tag)
		if err != nil {
			return d, fmt.Errorf("read %v: %w", tag, err)
		}
		for _, v := range vals {
			d.runpath = append(d.runpath, strings.Split(v, ":")...)
		}
	}
	return d, nil
}

// findLibrary returns the path of the first library named lib in the
// requester's run path or the loader's directories that is an ELF file of the
// requester's class and machine; the loader skips the others too.
func (v rootView) findLibrary(lib string, requester elfDeps) (string, error) {
	if strings.Contains(lib, "/") {
		return lib, nil
	}
	var dirs []string
	for _, d := range requester.runpath {
		// $ORIGIN and friends would need the requester's location;
		// nothing we pack uses them.
		if d != "" && !strings.Contains(d, "$") {
			dirs = append(dirs, strings.TrimPrefix(d, "/"))
		}
	}
	dirs = append(dirs, libraryDirs()...)
	for _, dir := range dirs {
		p := path.Join(dir, lib)
		r, err := v.resolve(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		d, err := readELFDeps(r.Host)
		if err != nil || d.class != requester.class || d.machine != requester.machine {
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("not found in /%s of packages %s", strings.Join(dirs, ", /"), v.rootNames())
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
