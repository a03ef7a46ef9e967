package imageset

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/yaml"

	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
)

// Set is an image set: what a lab cluster runs when its images come from registries.
type Set struct {
	// KindNode is the kind node image.
	KindNode string `json:"kindNode"`
	// Multus is Multus's thin-plugin image; its install_multus copies the plugin to the nodes.
	Multus string `json:"multus"`
	// KubeVirt is KubeVirt's operator manifest and the image of each component.
	KubeVirt KubeVirt `json:"kubevirt"`

	// File is the file the set was read from, for messages; "" when parsed from memory.
	File string `json:"-"`
}

// KubeVirt is the KubeVirt part of a set. The operator is told every other component's image
// (kubevirt.WithImages), so a mirror may lay them out as it likes.
type KubeVirt struct {
	// OperatorManifest is where the operator manifest (CRD, RBAC, virt-operator Deployment)
	// is downloaded from, and its SHA-256.
	OperatorManifest Manifest `json:"operatorManifest"`
	kubevirt.Images
}

// Manifest is a file fetched over HTTP(S) and checked against its SHA-256.
type Manifest struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Image is one image reference of a set, with its field path ("kubevirt.api").
type Image struct {
	Field string
	Ref   *string
}

// Images lists the set's image references in a fixed order: the node, KubeVirt's components,
// Multus.
func (s *Set) Images() []Image {
	out := []Image{{"kindNode", &s.KindNode}}
	for _, f := range s.KubeVirt.Images.Fields() {
		out = append(out, Image{"kubevirt." + f.Name, f.Ref})
	}
	return append(out, Image{"multus", &s.Multus})
}

// References returns the image references, one per image, in the order of Images.
func (s *Set) References() []string {
	var refs []string
	for _, i := range s.Images() {
		refs = append(refs, *i.Ref)
	}
	return refs
}

// Read reads a set from a YAML or JSON file. Its references may still lack digests and the
// manifest its SHA-256 (Pin fills them in); everything else must be well formed.
func Read(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image set: %w", err)
	}
	return Parse(data, path)
}

// Load reads a set from a file and refuses it unless every image is pinned by digest and the
// manifest by SHA-256.
func Load(path string) (*Set, error) {
	s, err := Read(path)
	if err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse decodes a set; file names it in messages. Unknown fields are refused.
func Parse(data []byte, file string) (*Set, error) {
	s := &Set{}
	if err := yaml.UnmarshalStrict(data, s); err != nil {
		return nil, fmt.Errorf("image set %s: %w", file, err)
	}
	s.File = file
	if problems := s.problems(false); len(problems) > 0 {
		return nil, s.fail(problems)
	}
	return s, nil
}

// Validate returns an error naming every field that is not pinned or not well formed.
func (s *Set) Validate() error {
	if problems := s.problems(true); len(problems) > 0 {
		return s.fail(problems)
	}
	return nil
}

func (s *Set) fail(problems []string) error {
	file := s.File
	if file == "" {
		file = "(in memory)"
	}
	return fmt.Errorf("image set %s: %s", file, strings.Join(problems, "; "))
}

// problems lists what is wrong with the set, each naming its field and value; pinned asks for
// digests and the manifest's SHA-256 too.
func (s *Set) problems(pinned bool) []string {
	var out []string
	unpinned := 0
	for _, i := range s.Images() {
		ref := *i.Ref
		if ref == "" {
			out = append(out, i.Field+": missing")
			continue
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			out = append(out, fmt.Sprintf("%s %q: not an image reference: %v", i.Field, ref, err))
			continue
		}
		if _, ok := r.(name.Digest); pinned && !ok {
			out = append(out, fmt.Sprintf("%s %q: no digest", i.Field, ref))
			unpinned++
		}
	}
	if unpinned > 0 {
		out = append(out, "pin each image as <repository>:<tag>@sha256:<digest> (make pin-images resolves the tags where the registries answer)")
	}
	m := s.KubeVirt.OperatorManifest
	const field = "kubevirt.operatorManifest"
	if m.URL == "" {
		out = append(out, field+".url: missing")
	} else if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		out = append(out, fmt.Sprintf("%s.url %q: want an http or https URL", field, m.URL))
	}
	if m.SHA256 != "" || pinned {
		if b, err := hex.DecodeString(m.SHA256); err != nil || len(b) != 32 || strings.ToLower(m.SHA256) != m.SHA256 {
			out = append(out, fmt.Sprintf("%s.sha256 %q: want the manifest's SHA-256, 64 lower-case hex digits", field, m.SHA256))
		}
	}
	return out
}

// Write writes the set in its canonical layout, header (comment lines) first.
func (s *Set) Write(w io.Writer, header string) error {
	q := func(v string) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
		if line != "" {
			fmt.Fprintln(&b, line)
		}
	}
	fmt.Fprintf(&b, "kindNode: %s\n", q(s.KindNode))
	fmt.Fprintf(&b, "kubevirt:\n  operatorManifest:\n    url: %s\n    sha256: %s\n", q(s.KubeVirt.OperatorManifest.URL), q(s.KubeVirt.OperatorManifest.SHA256))
	for _, f := range s.KubeVirt.Images.Fields() {
		fmt.Fprintf(&b, "  %s: %s\n", f.Name, q(*f.Ref))
	}
	fmt.Fprintf(&b, "multus: %s\n", q(s.Multus))
	_, err := w.Write(b.Bytes())
	return err
}

// Header returns the comment lines a set file starts with, for Write to keep.
func Header(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
