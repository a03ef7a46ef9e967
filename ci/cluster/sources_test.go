package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
)

// env is a fake environment for readRequest.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// setOn writes a pinned set whose images and manifest all live on host, and returns its path.
func setOn(t *testing.T, host, digest string) string {
	t.Helper()
	s := &imageset.Set{}
	for i, img := range s.Images() {
		*img.Ref = host + "/repo" + string(rune('a'+i)) + ":v1@" + digest
	}
	s.KubeVirt.OperatorManifest = imageset.Manifest{URL: "http://" + host + "/files/kubevirt-operator.yaml", SHA256: strings.Repeat("0", 64)}
	var b bytes.Buffer
	if err := s.Write(&b, "# test\n"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const someDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestReadRequestRefusesBadValuesAsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	unpinned := filepath.Join(dir, "unpinned.yaml")
	good := setOn(t, "mirror.example:5000", someDigest)
	data, _ := os.ReadFile(good)
	if err := os.WriteFile(unpinned, bytes.Replace(data, []byte("@"+someDigest), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"unknown mode", map[string]string{"PXEC_IMAGES": "registry"}, []string{`PXEC_IMAGES "registry"`, "auto, upstream or offline"}},
		{"unreadable file", map[string]string{"PXEC_IMAGES_FILE": filepath.Join(dir, "absent.yaml")}, []string{"PXEC_IMAGES_FILE", "absent.yaml"}},
		{"reference without digest", map[string]string{"PXEC_IMAGES_FILE": unpinned}, []string{"PXEC_IMAGES_FILE", `kindNode "mirror.example:5000/repoa:v1": no digest`}},
		{"file even when offline", map[string]string{"PXEC_IMAGES": "offline", "PXEC_IMAGES_FILE": unpinned}, []string{"PXEC_IMAGES_FILE", "no digest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readRequest(env(tc.vars))
			var u usageError
			if !errors.As(err, &u) {
				t.Fatalf("error %v, want a usage error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	r, err := readRequest(env(map[string]string{"PXEC_IMAGES_FILE": good}))
	if err != nil || r.mode != modeAuto || r.set == nil || r.label != "registry" {
		t.Errorf("a pinned set file: %+v, %v", r, err)
	}
}

// The upstream set is pinned only in part until its registries answer somewhere; auto then
// builds offline and says why, upstream refuses.
func TestAnUnpinnedUpstreamSetMeansOfflineForAutoAndAUsageErrorForUpstream(t *testing.T) {
	r, err := readRequest(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if r.set != nil {
		t.Skip("fixtures/images/upstream.yaml is pinned: nothing to refuse")
	}
	s, err := choose(context.Background(), r, &bytes.Buffer{})
	if err != nil || s.registry || !strings.Contains(s.why, "no digest") {
		t.Errorf("auto with an unpinned upstream set: registry %t, why %q, %v", s.registry, s.why, err)
	}
	_, err = readRequest(env(map[string]string{"PXEC_IMAGES": "upstream"}))
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "PXEC_IMAGES=upstream") {
		t.Errorf("upstream with an unpinned upstream set: %v, want a usage error", err)
	}
}

// TestAutoBuildsOfflineWhenAReferenceDoesNotAnswer stands in for this sandbox's network,
// which answers every TCP connection with HTTP 404.
func TestAutoBuildsOfflineWhenAReferenceDoesNotAnswer(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	}))
	defer page.Close()
	file := setOn(t, strings.TrimPrefix(page.URL, "http://"), someDigest)
	r, err := readRequest(env(map[string]string{"PXEC_IMAGES_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	start := time.Now()
	s, err := choose(context.Background(), r, &out)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > imageset.DefaultCheckTimeout+2*time.Second {
		t.Errorf("auto took %s to decide", took)
	}
	if s.registry || !strings.Contains(s.why, "10 of 10 references") || !strings.Contains(s.why, "kindNode "+r.set.KindNode) {
		t.Errorf("registry %t, why %q: want offline, naming what did not answer", s.registry, s.why)
	}
	if !strings.Contains(out.String(), "NO ANSWER kindNode") {
		t.Errorf("answers not printed:\n%s", out.String())
	}
	r.mode = modeUpstream
	if _, err := choose(context.Background(), r, &out); err == nil || !strings.Contains(err.Error(), "PXEC_IMAGES=upstream: 10 of 10") {
		t.Errorf("upstream with nothing answering: %v", err)
	}
	r.mode = modeOffline
	if s, err := choose(context.Background(), r, &out); err != nil || s.registry || s.why != "PXEC_IMAGES=offline" {
		t.Errorf("offline: registry %t, why %q, %v", s.registry, s.why, err)
	}
}

func TestAutoTakesTheSetWhenEveryReferenceAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New())
	mux.HandleFunc("/files/kubevirt-operator.yaml", func(w http.ResponseWriter, _ *http.Request) {})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	file := setOn(t, host, digest.String())
	set, err := imageset.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range set.References() {
		d, _ := name.NewDigest(ref)
		if err := remote.Write(d, img); err != nil {
			t.Fatal(err)
		}
	}
	r, err := readRequest(env(map[string]string{"PXEC_IMAGES_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := choose(context.Background(), r, &bytes.Buffer{})
	if err != nil || !s.registry || !strings.Contains(s.why, "every reference of "+file+" answered") {
		t.Fatalf("registry %t, why %q, %v", s.registry, s.why, err)
	}
	rows := s.table(build.Options{})
	sources := map[string]string{}
	for _, r := range rows {
		sources[r.image] = r.source + " " + r.ref
	}
	if sources["kind node"] != "registry "+set.KindNode || sources["multus"] != "registry "+set.Multus {
		t.Errorf("table %v: want the node and Multus from the set, labelled registry", rows)
	}
	for _, own := range []string{"pxe-server", "cni-plugins"} {
		if !strings.HasPrefix(sources[own], "offline pxec.local/") {
			t.Errorf("%s: %q, want our own build", own, sources[own])
		}
	}
	wantHandler := "registry " + set.KubeVirt.Handler
	if s.noDummy {
		wantHandler = "offline pxec.local/kubevirt/virt-handler:v1.9.0-pxec-nodummy"
	}
	if !strings.HasPrefix(sources["virt-handler"], wantHandler) {
		t.Errorf("virt-handler %q, want %q (kernel lacks dummy: %t, %s)", sources["virt-handler"], wantHandler, s.noDummy, s.dummyWhy)
	}
}

func TestListImagesPrintsTheSetInUseOnePerLine(t *testing.T) {
	file := setOn(t, "mirror.example:5000", someDigest)
	var out bytes.Buffer
	if err := listImages(&out, env(map[string]string{"PXEC_IMAGES_FILE": file}), build.Options{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 9 || lines[0] != "mirror.example:5000/repoa:v1@"+someDigest {
		t.Errorf("listed %q, want the set's 9 references", lines)
	}
	out.Reset()
	if err := listImages(&out, env(map[string]string{"PXEC_IMAGES": "offline"}), build.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, "pxec.local/") {
			t.Errorf("offline lists %q, not a build of this machine", l)
		}
	}
	var u usageError
	if err := listImages(&out, env(map[string]string{"PXEC_IMAGES": "sometimes"}), build.Options{}); !errors.As(err, &u) {
		t.Errorf("bad PXEC_IMAGES: %v, want a usage error", err)
	}
}
