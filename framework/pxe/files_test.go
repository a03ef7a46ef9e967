package pxe

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// linkedRoot is a root beside a secret file, with symlinks pointing inside and outside.
func linkedRoot(t testing.TB) (root, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir()) // resolvePath wants a symlink-free root
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(base, "root")
	outside = filepath.Join(base, "secret")
	for _, d := range []string{root, filepath.Join(root, "sub"), filepath.Join(base, "elsewhere")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(root, "vmlinuz"):         "kernel",
		filepath.Join(root, "sub", "file.txt"): "nested",
		outside:                                "secret",
		filepath.Join(base, "elsewhere", "x"):  "x",
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"link-inside":      "vmlinuz",
		"sub/link-up":      "../vmlinuz",
		"link-outside":     outside,
		"link-outside-rel": "../secret",
		"link-dir-out":     filepath.Join(base, "elsewhere"),
		"link-to-sub":      "sub",
		"dangling":         "does-not-exist",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func TestResolvePath(t *testing.T) {
	root, _ := linkedRoot(t)
	tests := []struct {
		name    string
		path    string
		want    string // resolved path relative to root; "" means an error
		wantErr error  // checked with errors.Is when set
		errText string // substring of the error when set
	}{
		{"plain file", "vmlinuz", "vmlinuz", nil, ""},
		{"nested file", "sub/file.txt", "sub/file.txt", nil, ""},
		{"redundant slashes and dots", "sub//./file.txt", "sub/file.txt", nil, ""},
		{"symlink inside root", "link-inside", "vmlinuz", nil, ""},
		{"symlink up but still inside", "sub/link-up", "vmlinuz", nil, ""},
		{"through a directory symlink inside", "link-to-sub/file.txt", "sub/file.txt", nil, ""},
		{"parent traversal", "../secret", "", nil, "parent directory"},
		{"traversal in the middle", "sub/../../secret", "", nil, "parent directory"},
		{"harmless-looking dotdot", "sub/../vmlinuz", "", nil, "parent directory"},
		{"absolute path", "/etc/passwd", "", nil, "absolute"},
		{"absolute path into root", "/vmlinuz", "", nil, "absolute"},
		{"symlink out, absolute", "link-outside", "", errOutsideRoot, ""},
		{"symlink out, relative", "link-outside-rel", "", errOutsideRoot, ""},
		{"through a directory symlink out", "link-dir-out/x", "", errOutsideRoot, ""},
		{"directory", "sub", "", errNotRegular, ""},
		{"directory via symlink", "link-to-sub", "", errNotRegular, ""},
		{"root itself", ".", "", nil, "root directory"},
		{"empty", "", "", nil, "empty"},
		{"NUL byte", "vmlinuz\x00.txt", "", nil, "NUL"},
		{"missing file", "nope", "", fs.ErrNotExist, ""},
		{"dangling symlink", "dangling", "", fs.ErrNotExist, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolvePath(root, tt.path)
			if tt.want != "" {
				if err != nil {
					t.Fatalf("resolvePath(%q): %v", tt.path, err)
				}
				if want := filepath.Join(root, tt.want); got != want {
					t.Errorf("resolvePath(%q) = %q, want %q", tt.path, got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("resolvePath(%q) = %q, want an error", tt.path, got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("resolvePath(%q) error %v, want %v", tt.path, err, tt.wantErr)
			}
			if tt.errText != "" && !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("resolvePath(%q) error %q, want it to mention %q", tt.path, err, tt.errText)
			}
			if !strings.Contains(err.Error(), "resolve") {
				t.Errorf("error %q does not say what failed", err)
			}
		})
	}
}

func TestFileRootOpensOnlyRegularFilesInside(t *testing.T) {
	root, _ := linkedRoot(t)
	fr, err := openFileRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.close()
	f, fi, err := fr.open("link-inside")
	if err != nil {
		t.Fatalf("open link-inside: %v", err)
	}
	f.Close()
	if fi.Size() != int64(len("kernel")) {
		t.Errorf("size %d, want the kernel's", fi.Size())
	}
	for _, name := range []string{"link-outside", "../secret", "sub"} {
		if f, _, err := fr.open(name); err == nil {
			f.Close()
			t.Errorf("open(%q) succeeded, want refusal", name)
		}
	}
}
