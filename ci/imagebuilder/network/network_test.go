package network

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/fixtures/manifests"
)

func TestManifestsNameTheImagesAndPluginsWeBuild(t *testing.T) {
	o := build.Options{}
	cases := []struct {
		manifest []byte
		image    string
	}{
		{manifests.Multus(), MultusImage(o)},
		{manifests.CNIPlugins(), CNIPluginsImage(o)},
	}
	for _, tc := range cases {
		if !strings.Contains(string(tc.manifest), "image: "+tc.image+"\n") {
			t.Errorf("manifest does not run %s", tc.image)
		}
	}
	// The installer DaemonSet installs exactly the plugins the image carries.
	ds := string(manifests.CNIPlugins())
	for _, p := range cniPluginPackages() {
		if !strings.Contains(ds, "        - "+p[0]+"\n") {
			t.Errorf("installer does not name plugin %s", p[0])
		}
	}
}

func TestRepoRootFindsOurModule(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The test runs in this package's directory, two levels below the root.
	if _, err := os.Stat(filepath.Join(root, "ci/imagebuilder/network/network.go")); err != nil {
		t.Fatalf("root %q does not hold this package: %v", root, err)
	}
	if err := (&builder{repo: root}).hasGoFiles("./fixtures/cni-setup"); err != nil {
		t.Errorf("hasGoFiles on a package with Go files: %v", err)
	}
	if err := (&builder{repo: root}).hasGoFiles("./fixtures/manifests/nonexistent"); err == nil {
		t.Errorf("hasGoFiles accepted a directory without Go files")
	}
}
