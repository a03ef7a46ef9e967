package imageset

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/fixtures/images"
)

const (
	testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testSHA    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// pinnedSet is a well-formed, fully pinned set in the shape of upstream.yaml.
func pinnedSet() string {
	img := func(repo string) string { return `"` + repo + ":v1@" + testDigest + `"` }
	return "# a mirror\nkindNode: " + img("mirror.example:5000/kindest/node") + `
kubevirt:
  operatorManifest:
    url: "https://mirror.example/kubevirt-operator.yaml"
    sha256: "` + testSHA + `"
  operator: ` + img("mirror.example:5000/kubevirt/virt-operator") + `
  api: ` + img("mirror.example:5000/kubevirt/virt-api") + `
  controller: ` + img("mirror.example:5000/kubevirt/virt-controller") + `
  handler: ` + img("mirror.example:5000/kubevirt/virt-handler") + `
  launcher: ` + img("mirror.example:5000/kubevirt/virt-launcher") + `
  exportProxy: ` + img("mirror.example:5000/kubevirt/virt-exportproxy") + `
  exportServer: ` + img("mirror.example:5000/kubevirt/virt-exportserver") + `
multus: ` + img("mirror.example:5000/k8snetworkplumbingwg/multus-cni") + "\n"
}

func TestLoadAcceptsAPinnedSetAndListsItsReferences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mirror.yaml")
	if err := os.WriteFile(path, []byte(pinnedSet()), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	refs := s.References()
	if len(refs) != 9 {
		t.Fatalf("%d references, want 9 (node, 7 KubeVirt components, Multus): %v", len(refs), refs)
	}
	if refs[0] != "mirror.example:5000/kindest/node:v1@"+testDigest || refs[8] != "mirror.example:5000/k8snetworkplumbingwg/multus-cni:v1@"+testDigest {
		t.Errorf("references in the wrong order: %v", refs)
	}
	if s.KubeVirt.API != "mirror.example:5000/kubevirt/virt-api:v1@"+testDigest {
		t.Errorf("kubevirt.api = %q", s.KubeVirt.API)
	}
}

func TestLoadNamesEveryFieldThatIsNotPinnedOrNotWellFormed(t *testing.T) {
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"tag only", `"mirror.example:5000/kubevirt/virt-api:v1@` + testDigest + `"`, `"mirror.example:5000/kubevirt/virt-api:v1"`,
			[]string{`kubevirt.api "mirror.example:5000/kubevirt/virt-api:v1": no digest`}},
		{"not a reference", `"mirror.example:5000/kubevirt/virt-handler:v1@` + testDigest + `"`, `"Mirror Example/virt-handler"`,
			[]string{`kubevirt.handler "Mirror Example/virt-handler": not an image reference`}},
		{"missing image", "multus: ", "# multus: ",
			[]string{"multus: missing"}},
		{"no manifest hash", `sha256: "` + testSHA + `"`, `sha256: ""`,
			[]string{`kubevirt.operatorManifest.sha256 "": want the manifest's SHA-256`}},
		{"manifest hash not hex", `sha256: "` + testSHA + `"`, `sha256: "` + strings.ToUpper(testSHA) + `"`,
			[]string{`kubevirt.operatorManifest.sha256 "0123456789ABCDEF`}},
		{"manifest URL not http", `"https://mirror.example/kubevirt-operator.yaml"`, `"file:///tmp/kubevirt-operator.yaml"`,
			[]string{`kubevirt.operatorManifest.url "file:///tmp/kubevirt-operator.yaml": want an http or https URL`}},
		{"unknown field", "multus: ", "multuss: ",
			[]string{`unknown field "multuss"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "set.yaml")
			text := strings.Replace(pinnedSet(), tc.old, tc.new, 1)
			if text == pinnedSet() {
				t.Fatalf("%q not in the set", tc.old)
			}
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), "image set "+path+": ") {
				t.Errorf("error %q does not name the file", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadNamesAnUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one naming %s", err, path)
	}
}

func TestReadAcceptsTagsThatLoadRefuses(t *testing.T) {
	s, err := Parse(images.Upstream(), images.UpstreamFile)
	if err != nil {
		t.Fatalf("the upstream set is not well formed: %v", err)
	}
	// kind v0.33.0's release notes give the 1.34 image only with this digest.
	const kind = "kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
	if s.KindNode != kind {
		t.Errorf("kindNode %q, want %q", s.KindNode, kind)
	}
	if err := s.Validate(); err != nil && !strings.Contains(err.Error(), "no digest") && !strings.Contains(err.Error(), "sha256") {
		t.Errorf("validation fails for another reason than pinning: %v", err)
	}
}

func TestWriteKeepsTheHeaderAndReadsBackTheSameSet(t *testing.T) {
	s, err := Parse([]byte(pinnedSet()), "mirror.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Write(&b, Header([]byte(pinnedSet()))); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "# a mirror\nkindNode: ") {
		t.Errorf("written set does not start with the header and the node:\n%s", b.String())
	}
	back, err := Parse(b.Bytes(), "written")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	back.File = s.File
	if *back != *s {
		t.Errorf("read back %+v, want %+v", back, s)
	}
}
