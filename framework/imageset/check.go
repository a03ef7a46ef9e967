package imageset

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultCheckTimeout bounds Check as a whole: every reference is asked at once.
const DefaultCheckTimeout = 5 * time.Second

// Answer is what one reference's registry (or the manifest's server) said.
type Answer struct {
	// Field is the set's field ("kubevirt.api", "kubevirt.operatorManifest").
	Field string
	// Ref is the image reference or the manifest's URL.
	Ref string
	// OK is true when a valid manifest with the pinned digest answered (for the operator
	// manifest: HTTP 200).
	OK bool
	// Detail says what answered, or why the reference counts as unreachable.
	Detail string
}

// Check asks the registry of every image, and the operator manifest's server, whether it
// holds what the set pins, without pulling: a HEAD request for each manifest, all at once,
// bounded by timeout in all. Anything but a manifest (or image index) of the pinned digest
// counts as unreachable: an error, another media type, another digest, a timeout. Some networks
// answer any TCP connection with an HTTP error page, so an answer alone proves nothing.
// Credentials come from the Docker config, as for docker pull. The set should be Validated.
func (s *Set) Check(ctx context.Context, timeout time.Duration) []Answer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	images := s.Images()
	answers := make([]Answer, len(images)+1)
	var wg sync.WaitGroup
	for i, img := range images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = headImage(ctx, img.Field, *img.Ref)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		answers[len(images)] = headURL(ctx, "kubevirt.operatorManifest", s.KubeVirt.OperatorManifest.URL)
	}()
	wg.Wait()
	return answers
}

// Unreachable returns the answers that are not OK.
func Unreachable(answers []Answer) []Answer {
	var out []Answer
	for _, a := range answers {
		if !a.OK {
			out = append(out, a)
		}
	}
	return out
}

// manifestTypes are the media types a pinned image reference may resolve to.
var manifestTypes = map[types.MediaType]bool{
	types.OCIManifestSchema1:    true,
	types.OCIImageIndex:         true,
	types.DockerManifestSchema2: true,
	types.DockerManifestList:    true,
}

func headImage(ctx context.Context, field, ref string) Answer {
	a := Answer{Field: field, Ref: ref}
	d, err := name.NewDigest(ref)
	if err != nil {
		a.Detail = "not pinned by digest: " + err.Error()
		return a
	}
	desc, err := remote.Head(d, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
	switch {
	case err != nil:
		a.Detail = oneLine(err.Error())
	case !manifestTypes[desc.MediaType]:
		a.Detail = fmt.Sprintf("answered with media type %q, not an image manifest", desc.MediaType)
	case desc.Digest.String() != d.DigestStr():
		a.Detail = fmt.Sprintf("answered with digest %s, not the pinned %s", desc.Digest, d.DigestStr())
	default:
		a.OK, a.Detail = true, fmt.Sprintf("%s, %d bytes", desc.MediaType, desc.Size)
	}
	return a
}

func headURL(ctx context.Context, field, url string) Answer {
	a := Answer{Field: field, Ref: url}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		a.Detail = err.Error()
		return a
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.Detail = oneLine(err.Error())
		return a
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.Detail = "answered " + resp.Status
		return a
	}
	a.OK, a.Detail = true, "answered "+resp.Status
	return a
}

// oneLine keeps a registry's error message (which may quote an HTML page) to one short line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
