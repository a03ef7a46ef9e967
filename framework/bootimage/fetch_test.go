package bootimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAptFor puts an apt-cache that knows one package (ipxe 1.0, all, with the SHA-256 of
// indexed) and an apt-get whose download writes served as that package's .deb, counting its
// downloads, first in PATH.
func fakeAptFor(t *testing.T, indexed, served string) (downloads func() int) {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(indexed))
	count := filepath.Join(dir, "downloads")
	content := filepath.Join(dir, "content")
	if err := os.WriteFile(content, []byte(served), 0o644); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{
		"apt-cache": "#!/bin/sh\nprintf 'Package: ipxe\\nVersion: 1.0\\nArchitecture: all\\nSHA256: " + hex.EncodeToString(sum[:]) + "\\n\\n'\n",
		"apt-get": "#!/bin/sh\n[ \"$1\" = download ] || exit 1\necho x >> " + count + "\n" +
			"for a in \"$@\"; do case \"$a\" in -*|APT::*|download) ;; *=*) cp " + content + " \"${a%%=*}_${a#*=}_all.deb\" ;; esac; done\n",
	}
	putFirstInPath(t, dir, scripts)
	return func() int {
		data, _ := os.ReadFile(count)
		return strings.Count(string(data), "x")
	}
}

func TestFetchPinsTheCandidateAndReusesAFileWithItsHash(t *testing.T) {
	downloads := fakeAptFor(t, "the deb", "the deb")
	dir := t.TempDir()
	for i := range 2 {
		pkgs, paths, err := Fetch(context.Background(), dir, nil, "ipxe")
		if err != nil {
			t.Fatal(err)
		}
		p := pkgs["ipxe"]
		sum := sha256.Sum256([]byte("the deb"))
		if p.Version != "1.0" || p.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("call %d: pinned %+v", i+1, p)
		}
		if want := "ipxe=1.0/all sha256:" + p.SHA256; p.Pin() != want {
			t.Errorf("Pin() = %q, want %q", p.Pin(), want)
		}
		if data, err := os.ReadFile(paths["ipxe"]); err != nil || string(data) != "the deb" {
			t.Errorf("call %d: %s holds %q, %v", i+1, paths["ipxe"], data, err)
		}
	}
	if n := downloads(); n != 1 {
		t.Errorf("apt-get download ran %d times, want 1 (the second call has the file)", n)
	}
}

func TestFetchRefusesADebWhoseHashIsNotTheIndexs(t *testing.T) {
	fakeAptFor(t, "the deb", "another deb")
	dir := t.TempDir()
	_, _, err := Fetch(context.Background(), dir, nil, "ipxe")
	if err == nil || !strings.Contains(err.Error(), "the package index says") {
		t.Fatalf("Fetch of a deb with the wrong hash: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ipxe_1.0_all.deb")); !os.IsNotExist(err) {
		t.Errorf("the refused deb is in the cache: %v", err)
	}
}
