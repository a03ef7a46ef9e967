package bootimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// rootView is the union of unpacked package trees, as the guest will see them
// once their files share one root. Paths are relative and slash-separated;
// symlinks, absolute ones included, resolve inside the union, never on the
// host.
type rootView struct {
	roots []string
}

// symlink is one symbolic link crossed while resolving a path.
type symlink struct {
	Path   string
	Target string
}

// resolvedPath is where a path of the union really is.
type resolvedPath struct {
	// Path is the canonical path: no symlinks, no dots.
	Path string
	// Host is the file on the host.
	Host string
	// Links are the symlinks crossed on the way, in order; the guest needs
	// each of them to reach the file by the original path.
	Links []symlink
	// Info describes the final file (never a symlink).
	Info fs.FileInfo
}

// maxSymlinks bounds symlink hops, as the kernel's ELOOP limit does.
const maxSymlinks = 40

// resolve follows p through the union, component by component.
func (v rootView) resolve(p string) (resolvedPath, error) {
	var r resolvedPath
	rest := splitPath(p)
	cur := ""
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			cur = parentPath(cur)
			continue
		}
		next := path.Join(cur, c)
		root, info, err := v.lstat(cur, next)
		if err != nil {
			return r, fmt.Errorf("resolve /%s: %w", p, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !info.IsDir() {
				return r, fmt.Errorf("resolve /%s: /%s is not a directory", p, next)
			}
			cur = next
			r.Host = filepath.Join(root, filepath.FromSlash(next))
			r.Info = info
			continue
		}
		if hops++; hops > maxSymlinks {
			return r, fmt.Errorf("resolve /%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(next)))
		if err != nil {
			return r, fmt.Errorf("resolve /%s: %w", p, err)
		}
		r.Links = append(r.Links, symlink{Path: next, Target: target})
		if strings.HasPrefix(target, "/") {
			cur = ""
		}
		rest = append(splitPath(target), rest...)
	}
	if cur == "" {
		return r, fmt.Errorf("resolve /%s: names the root directory", p)
	}
	r.Path = cur
	return r, nil
}

// lstat finds next in the first root whose dir is a real directory and that
// has next. Checking dir first keeps a symlinked directory in one root from
// being followed on the host.
func (v rootView) lstat(dir, next string) (string, fs.FileInfo, error) {
	for _, root := range v.roots {
		if dir != "" {
			di, err := os.Lstat(filepath.Join(root, filepath.FromSlash(dir)))
			if err != nil || !di.IsDir() {
				continue
			}
		}
		info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(next)))
		if err == nil {
			return root, info, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("/%s: %w", next, fs.ErrNotExist)
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func parentPath(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// rootNames lists the roots' base names (the unpacked packages) for errors.
func (v rootView) rootNames() string {
	names := make([]string, len(v.roots))
	for i, r := range v.roots {
		names[i] = filepath.Base(r)
	}
	return strings.Join(names, ", ")
}
