package imageset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// maxManifest bounds a downloaded operator manifest (KubeVirt's is about 0.5 MB).
const maxManifest = 64 << 20

// Pin returns a copy of s in which every image reference without a digest carries the digest
// its registry gives for its tag (repository:tag@sha256:...), and the operator manifest the
// SHA-256 of what its URL serves. References pinned already are kept as they are. Pin is for
// the maintainers of a set, where the registries answer: a run never pins, it Loads.
func (s *Set) Pin(ctx context.Context) (*Set, error) {
	out := *s
	for _, img := range out.Images() {
		r, err := name.ParseReference(*img.Ref)
		if err != nil {
			return nil, fmt.Errorf("pin %s %q: %w", img.Field, *img.Ref, err)
		}
		if _, ok := r.(name.Digest); ok {
			continue
		}
		desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return nil, fmt.Errorf("pin %s %q: %w", img.Field, *img.Ref, err)
		}
		if !manifestTypes[desc.MediaType] {
			return nil, fmt.Errorf("pin %s %q: the registry answered with media type %q, not an image manifest", img.Field, *img.Ref, desc.MediaType)
		}
		*img.Ref += "@" + desc.Digest.String()
	}
	if out.KubeVirt.OperatorManifest.SHA256 == "" {
		data, err := download(ctx, out.KubeVirt.OperatorManifest.URL)
		if err != nil {
			return nil, fmt.Errorf("pin kubevirt.operatorManifest: %w", err)
		}
		sum := sha256.Sum256(data)
		out.KubeVirt.OperatorManifest.SHA256 = hex.EncodeToString(sum[:])
	}
	return &out, nil
}

// Fetch downloads the manifest and returns it if its SHA-256 is the pinned one.
func (m Manifest) Fetch(ctx context.Context) ([]byte, error) {
	data, err := download(ctx, m.URL)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != m.SHA256 {
		return nil, fmt.Errorf("manifest %s: SHA-256 %s, the set pins %s", m.URL, got, m.SHA256)
	}
	return data, nil
}

func download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("download %s: larger than %d bytes", url, maxManifest)
	}
	return data, nil
}
