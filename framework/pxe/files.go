package pxe

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Errors path resolution wraps, so callers can tell refusals from absent files.
var (
	errOutsideRoot = errors.New("resolves outside the root")
	errNotRegular  = errors.New("not a regular file")
)

// fileRoot is the read-only directory TFTP and HTTP share.
type fileRoot struct {
	// dir is the absolute, symlink-free path of the root.
	dir string
	// root opens files without escaping dir even if links change between
	// resolvePath and the open.
	root *os.Root
}

// openFileRoot opens dir as the served root; the caller names dir in errors.
func openFileRoot(dir string) (*fileRoot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, errors.New("not a directory")
	}
	root, err := os.OpenRoot(resolved)
	if err != nil {
		return nil, err
	}
	return &fileRoot{dir: resolved, root: root}, nil
}

// close releases the root directory's descriptor.
func (r *fileRoot) close() error {
	return r.root.Close()
}

// open resolves name and opens the regular file it names.
func (r *fileRoot) open(name string) (*os.File, fs.FileInfo, error) {
	resolved, err := resolvePath(r.dir, name)
	if err != nil {
		return nil, nil, err
	}
	rel, err := filepath.Rel(r.dir, resolved)
	if err != nil {
		return nil, nil, fmt.Errorf("resolve %q: %w", name, err)
	}
	f, err := r.root.Open(rel)
	if err != nil {
		return nil, nil, fmt.Errorf("open %q: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("open %q: %w", name, errNotRegular)
	}
	return f, fi, nil
}

// resolvePath maps a client-supplied name to the absolute path of a regular
// file inside root, which must itself be absolute and free of symlinks. It
// refuses empty names, NUL bytes, absolute names, any ".." element, symlinks
// that lead outside root, and anything that is not a regular file. It is the
// one resolver TFTP and HTTP share.
func resolvePath(root, name string) (string, error) {
	if err := checkRelName(name); err != nil {
		return "", fmt.Errorf("resolve %q: %w", name, err)
	}
	joined := filepath.Join(root, filepath.FromSlash(name))
	resolved, err := filepath.EvalSymlinks(joined)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve %q: %w", name, fs.ErrNotExist)
		}
		return "", fmt.Errorf("resolve %q: %w", name, err)
	}
	if !within(root, resolved) {
		return "", fmt.Errorf("resolve %q: %w", name, errOutsideRoot)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("resolve %q: %w", name, errNotRegular)
	}
	return resolved, nil
}

// within reports whether p is root or below it; both must be clean and absolute.
func within(root, p string) bool {
	if p == root {
		return true
	}
	if root == string(filepath.Separator) {
		return strings.HasPrefix(p, root)
	}
	return strings.HasPrefix(p, root+string(filepath.Separator))
}
