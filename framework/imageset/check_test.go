package imageset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const testManifestBody = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt}\n"

// testRegistry serves a registry (go-containerregistry's) under /v2/ and the operator manifest
// under /files/, and returns a set whose images are tagged there but not yet pinned.
func testRegistry(t *testing.T) (*httptest.Server, *Set) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New())
	mux.HandleFunc("/files/kubevirt-operator.yaml", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, testManifestBody)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	s := &Set{File: "test"}
	s.KubeVirt.OperatorManifest.URL = srv.URL + "/files/kubevirt-operator.yaml"
	for i, img := range s.Images() {
		*img.Ref = fmt.Sprintf("%s/repo%d:v1", host, i)
		tag, err := name.NewTag(*img.Ref)
		if err != nil {
			t.Fatal(err)
		}
		image, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, image); err != nil {
			t.Fatal(err)
		}
	}
	return srv, s
}

func TestPinResolvesTagsToTheRegistrysDigestsAndHashesTheManifest(t *testing.T) {
	_, s := testRegistry(t)
	pinned, err := s.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := pinned.Validate(); err != nil {
		t.Fatalf("pinned set does not validate: %v", err)
	}
	for i, img := range pinned.Images() {
		tag, _ := name.NewTag(s.References()[i])
		desc, err := remote.Head(tag)
		if err != nil {
			t.Fatal(err)
		}
		if want := s.References()[i] + "@" + desc.Digest.String(); *img.Ref != want {
			t.Errorf("%s pinned as %q, want %q", img.Field, *img.Ref, want)
		}
	}
	sum := sha256.Sum256([]byte(testManifestBody))
	if got := pinned.KubeVirt.OperatorManifest.SHA256; got != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest sha256 %s, want %x", got, sum)
	}
	if s.KubeVirt.API == pinned.KubeVirt.API {
		t.Errorf("Pin changed its receiver instead of a copy")
	}
	data, err := pinned.KubeVirt.OperatorManifest.Fetch(context.Background())
	if err != nil || string(data) != testManifestBody {
		t.Errorf("fetch: %q, %v", data, err)
	}
}

func TestCheckAnswersOKOnlyForThePinnedManifests(t *testing.T) {
	_, s := testRegistry(t)
	pinned, err := s.Pin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if bad := Unreachable(pinned.Check(context.Background(), DefaultCheckTimeout)); len(bad) > 0 {
		t.Fatalf("unreachable in a registry that holds them: %+v", bad)
	}
	// Another digest in the same registry: the registry answers, but not with what is pinned.
	other := *pinned
	other.Multus = strings.Split(other.Multus, "@")[0] + "@" + testDigest
	bad := Unreachable(other.Check(context.Background(), DefaultCheckTimeout))
	if len(bad) != 1 || bad[0].Field != "multus" {
		t.Errorf("unreachable %+v, want multus alone", bad)
	}
	// A manifest that is not there.
	other = *pinned
	other.KubeVirt.OperatorManifest.URL += ".absent"
	bad = Unreachable(other.Check(context.Background(), DefaultCheckTimeout))
	if len(bad) != 1 || bad[0].Field != "kubevirt.operatorManifest" || !strings.Contains(bad[0].Detail, "404") {
		t.Errorf("unreachable %+v, want the manifest alone, answered 404", bad)
	}
}

// TestCheckCountsAnyHTTPAnswerButAManifestAsUnreachable stands in for a network that answers
// every connection with an HTTP error page (this sandbox's does): nothing there is a registry.
func TestCheckCountsAnyHTTPAnswerButAManifestAsUnreachable(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>not found</html>", http.StatusNotFound)
	}))
	defer page.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "<html>welcome</html>")
	}))
	defer ok.Close()
	for _, srv := range []*httptest.Server{page, ok} {
		s := pinnedOn(t, strings.TrimPrefix(srv.URL, "http://"))
		answers := s.Check(context.Background(), DefaultCheckTimeout)
		if len(answers) != 10 {
			t.Fatalf("%d answers, want 10 (9 images and the manifest)", len(answers))
		}
		for _, a := range answers {
			if a.OK && a.Field != "kubevirt.operatorManifest" {
				t.Errorf("%s counted as reachable on a server that is no registry: %+v", a.Field, a)
			}
		}
	}
}

func TestCheckIsBoundedInAll(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	defer hang.CloseClientConnections()
	s := pinnedOn(t, strings.TrimPrefix(hang.URL, "http://"))
	start := time.Now()
	bad := Unreachable(s.Check(context.Background(), 500*time.Millisecond))
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Check took %s with a bound of 0.5 s", took)
	}
	if len(bad) != 10 {
		t.Errorf("%d unreachable, want all 10", len(bad))
	}
}

// pinnedOn is a well-formed pinned set whose images and manifest are all on host.
func pinnedOn(t *testing.T, host string) *Set {
	t.Helper()
	s, err := Parse([]byte(strings.ReplaceAll(strings.ReplaceAll(pinnedSet(), "mirror.example:5000", host),
		"https://mirror.example", "http://"+host)), "test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
