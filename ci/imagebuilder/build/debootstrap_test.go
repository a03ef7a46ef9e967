package build

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDebootstrap puts a debootstrap first in PATH that records its arguments and fills its
// target (the second-to-last argument), or fails when fail is set.
func fakeDebootstrap(t *testing.T, fail bool) (calls func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	body := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	body += "for a in \"$@\"; do target=$last; last=$a; done\nmkdir -p \"$target/etc\" && echo root > \"$target/etc/hostname\"\n"
	if fail {
		body += "echo 'E: Couldn't download packages' >&2\nexit 1\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "debootstrap"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		data, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
}

func TestDebootstrapMakesTheRootOnceAndLeavesNothingWhenItFails(t *testing.T) {
	o := Options{Progress: NewProgress(io.Discard, 0), Log: io.Discard}
	ctx := context.Background()

	calls := fakeDebootstrap(t, false)
	root := filepath.Join(t.TempDir(), "rootfs", "bookworm-x")
	d := Debootstrap{Step: "debootstrap", Dir: root, Suite: "bookworm", Mirror: "http://archive.example/debian", Include: []string{"a", "b"}}
	for range 2 {
		if err := d.Run(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	got := calls()
	if len(got) != 1 || got[0] != "--variant=minbase --include=a,b bookworm "+root+".tmp http://archive.example/debian" {
		t.Errorf("debootstrap ran as %q, want once, into %s.tmp", got, root)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/hostname")); err != nil {
		t.Errorf("the root: %v", err)
	}

	fakeDebootstrap(t, true)
	failed := filepath.Join(t.TempDir(), "failed")
	err := Debootstrap{Step: "debootstrap", Dir: failed, Suite: "bookworm", Mirror: "http://archive.example/debian"}.Run(ctx, o)
	if err == nil || !strings.Contains(err.Error(), "debootstrap --variant=minbase bookworm "+failed+".tmp") {
		t.Fatalf("a failed debootstrap: %v, want its command line", err)
	}
	for _, p := range []string{failed, failed + ".tmp"} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is left: %v", p, err)
		}
	}
}
