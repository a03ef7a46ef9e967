package bootimage

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mkTree creates files ("path": content) and symlinks ("path": "->target").
func mkTree(t *testing.T, spec map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, v := range spec {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(v, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRootViewResolvesSymlinksInsideTheUnion(t *testing.T) {
	libc := mkTree(t, map[string]string{
		"lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "loader",
		"lib64/ld-linux-x86-64.so.2":                "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"lib/x86_64-linux-gnu/libcrypt.so.1":        "->libcrypt.so.1.1.0",
		"lib/x86_64-linux-gnu/libcrypt.so.1.1.0":    "crypt",
	})
	other := mkTree(t, map[string]string{
		"usr/lib/x86_64-linux-gnu/libz.so.1":  "->../../../lib/x86_64-linux-gnu/libz.so.1.2.13",
		"lib/x86_64-linux-gnu/libz.so.1.2.13": "zlib",
		"etc/hostname-link":                   "->/etc/hostname",
		"loop/a":                              "->b",
		"loop/b":                              "->a",
		"dirlink":                             "->lib/x86_64-linux-gnu",
		"file":                                "plain",
	})
	v := rootView{roots: []string{libc, other}}
	tests := []struct {
		name      string
		path      string
		wantPath  string
		wantLinks []string
		wantErr   string
	}{
		{"absolute link stays in the union", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", []string{"lib64/ld-linux-x86-64.so.2"}, ""},
		{"relative link", "lib/x86_64-linux-gnu/libcrypt.so.1", "lib/x86_64-linux-gnu/libcrypt.so.1.1.0", []string{"lib/x86_64-linux-gnu/libcrypt.so.1"}, ""},
		{"link into another package", "usr/lib/x86_64-linux-gnu/libz.so.1", "lib/x86_64-linux-gnu/libz.so.1.2.13", []string{"usr/lib/x86_64-linux-gnu/libz.so.1"}, ""},
		{"directory link", "dirlink/libcrypt.so.1.1.0", "lib/x86_64-linux-gnu/libcrypt.so.1.1.0", []string{"dirlink"}, ""},
		{"host files are not visible", "etc/hostname-link", "", nil, "does not exist"},
		{"loop", "loop/a", "", nil, "too many levels"},
		{"file as directory", "file/x", "", nil, "not a directory"},
		{"missing", "nope", "", nil, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := v.resolve(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve: error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			var links []string
			for _, l := range r.Links {
				links = append(links, l.Path)
			}
			if r.Path != tt.wantPath || !slices.Equal(links, tt.wantLinks) {
				t.Errorf("resolve = %s via %v, want %s via %v", r.Path, links, tt.wantPath, tt.wantLinks)
			}
		})
	}
}

// The host's own loader is the reference: what it would load for a program
// must be what elfClosure packs.
func TestELFClosureMatchesTheHostLoader(t *testing.T) {
	const loader = "/lib64/ld-linux-x86-64.so.2"
	const program = "/usr/bin/ls"
	for _, f := range []string{loader, program} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("host has no %s", f)
		}
	}
	out, err := exec.Command(loader, "--list", program).Output()
	if err != nil {
		t.Skipf("%s --list %s: %v", loader, program, err)
	}
	want := []string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var p string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			p = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			p = f[0]
		default:
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, strings.TrimPrefix(real, "/"))
	}
	real, err := filepath.EvalSymlinks(program)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, strings.TrimPrefix(real, "/"))
	slices.Sort(want)
	want = slices.Compact(want)

	files, err := rootView{roots: []string{"/"}}.elfClosure([]string{strings.TrimPrefix(program, "/")})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(files.Files); !slices.Equal(got, want) {
		t.Errorf("elfClosure(%s) = %v, host loader loads %v", program, got, want)
	}
}

// checkClosed asserts that every ELF file in the set finds its interpreter
// and each needed library inside the set, through the set's links.
func checkClosed(t *testing.T, files *elfFiles) {
	t.Helper()
	have := map[string]bool{}
	for p := range files.Files {
		have[p] = true
	}
	for p := range files.Links {
		have[p] = true
	}
	for p, host := range files.Files {
		d, err := readELFDeps(host)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if d.interp != "" && !have[strings.TrimPrefix(d.interp, "/")] {
			t.Errorf("%s: interpreter %s not packed", p, d.interp)
		}
		for _, lib := range d.needed {
			found := false
			for _, dir := range libraryDirs() {
				found = found || have[path.Join(dir, lib)]
			}
			if !found {
				t.Errorf("%s needs %s, which is not packed", p, lib)
			}
		}
	}
}

func TestELFClosureOfDropbearIsSelfContained(t *testing.T) {
	trees := unpackedPackages(t, dropbearPlan(t)...)
	var roots []string
	for _, d := range trees {
		roots = append(roots, d)
	}
	slices.Sort(roots)
	files, err := rootView{roots: roots}.elfClosure([]string{"usr/sbin/dropbear", "usr/bin/dropbearkey"})
	if err != nil {
		t.Fatal(err)
	}
	checkClosed(t, files)
	for _, p := range []string{"usr/sbin/dropbear", "usr/bin/dropbearkey"} {
		if _, ok := files.Files[p]; !ok {
			t.Errorf("%s itself not packed", p)
		}
	}
	t.Logf("dropbear needs %v via links %v", sortedKeys(files.Files), sortedKeys(files.Links))
}

// Leaving out any package that provides a packed library must fail with an
// error naming a library and what needs it.
func TestELFClosureNamesTheMissingLibrary(t *testing.T) {
	trees := unpackedPackages(t, dropbearPlan(t)...)
	var roots []string
	for _, d := range trees {
		roots = append(roots, d)
	}
	slices.Sort(roots)
	programs := []string{"usr/sbin/dropbear", "usr/bin/dropbearkey"}
	full, err := rootView{roots: roots}.elfClosure(programs)
	if err != nil {
		t.Fatal(err)
	}
	tested := 0
	for i, root := range roots {
		var provides []string
		for p, host := range full.Files {
			if strings.HasPrefix(host, root+string(filepath.Separator)) && !slices.Contains(programs, p) {
				provides = append(provides, path.Base(p))
			}
		}
		if len(provides) == 0 {
			continue
		}
		tested++
		without := append(slices.Clone(roots[:i]), roots[i+1:]...)
		_, err := rootView{roots: without}.elfClosure(programs)
		if err == nil {
			t.Errorf("closure without %s succeeded", filepath.Base(root))
			continue
		}
		t.Logf("without %s: %v", filepath.Base(root), err)
		if !strings.Contains(err.Error(), "needed by") && !strings.Contains(err.Error(), "interpreter") {
			t.Errorf("without %s: error %q does not say what needs the file", filepath.Base(root), err)
		}
		named := false
		for _, lib := range provides {
			stem, _, _ := strings.Cut(lib, ".so")
			named = named || strings.Contains(err.Error(), stem)
		}
		if !named {
			t.Errorf("without %s: error %q names none of %v", filepath.Base(root), err, provides)
		}
	}
	if tested < 2 {
		t.Errorf("only %d packages provide libraries; the test proves little", tested)
	}
}
