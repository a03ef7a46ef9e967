package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/fixtures/images"
	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
)

func TestEveryFieldOfTheSetHasABuiltImage(t *testing.T) {
	set, err := imageset.Parse(images.Upstream(), images.UpstreamFile)
	if err != nil {
		t.Fatal(err)
	}
	built := builtImages(build.Options{})
	for _, img := range set.Images() {
		if !strings.HasPrefix(built[img.Field], "pxec.local/") {
			t.Errorf("%s: built image %q", img.Field, built[img.Field])
		}
	}
	if len(built) != len(set.Images()) {
		t.Errorf("%d built images for %d fields", len(built), len(set.Images()))
	}
}

func TestMirroredKeepsRepositoryAndTagUnderTheRegistry(t *testing.T) {
	for _, tc := range []struct{ ref, want string }{
		{"kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d", "127.0.0.1:5000/kindest/node:v1.34.11"},
		{"quay.io/kubevirt/virt-api:v1.9.0", "127.0.0.1:5000/kubevirt/virt-api:v1.9.0"},
		{"ghcr.io/k8snetworkplumbingwg/multus-cni:v4.2.2", "127.0.0.1:5000/k8snetworkplumbingwg/multus-cni:v4.2.2"},
	} {
		got, err := mirrored("127.0.0.1:5000", tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("mirrored(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	if _, err := mirrored("127.0.0.1:5000", "quay.io/kubevirt/virt-api"); err == nil {
		t.Errorf("a reference without a tag was mirrored")
	}
}

func TestAccessLogIsReadBackAndFindsWhoGotAManifest(t *testing.T) {
	var b strings.Builder
	a := &accessLog{w: &b}
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "absent") {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("{}"))
	}))
	const digest = "sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
	for _, req := range []struct{ client, path string }{
		{"172.18.0.2:40000", "/v2/kubevirt/virt-api/manifests/" + digest},
		{"127.0.0.1:40001", "/v2/kubevirt/virt-api/manifests/" + digest},
		{"172.18.0.3:40002", "/v2/kubevirt/absent/manifests/" + digest},
	} {
		r := httptest.NewRequest("GET", req.path, nil)
		r.RemoteAddr = req.client
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	log, err := parseAccess(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(log) != 3 || log[2].status != 404 {
		t.Fatalf("read back %+v", log)
	}
	d, _ := name.NewDigest("127.0.0.1:5000/kubevirt/virt-api:v1.9.0@" + digest)
	if got := strings.Join(manifestClients(log, d), ","); got != "172.18.0.2,127.0.0.1" {
		t.Errorf("clients %q, want 172.18.0.2,127.0.0.1", got)
	}
	absent, _ := name.NewDigest("127.0.0.1:5000/kubevirt/absent@" + digest)
	if got := manifestClients(log, absent); len(got) != 0 {
		t.Errorf("a 404 counted as served: %v", got)
	}
}

func TestPulledImagesReadsTheKubeletsMessages(t *testing.T) {
	const ref = "127.0.0.1:5000/kubevirt/virt-api:v1.9.0@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d"
	got := pulledImages([]corev1.Event{
		{Reason: "Pulled", Message: `Successfully pulled image "` + ref + `" in 1.2s (1.2s including waiting). Image size: 80000 bytes.`},
		{Reason: "Pulled", Message: `Container image "pxec.local/pxe-server:dev" already present on machine`},
	})
	if len(got) != 1 || !strings.HasPrefix(got[ref], "in 1.2s") {
		t.Errorf("pulled %v, want %s alone", got, ref)
	}
}

func TestDockersHeadOfACachedManifestCountsAndOthersDoNot(t *testing.T) {
	var b strings.Builder
	a := &accessLog{w: &b}
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	const digest = "sha256:0d65d26094b786282fdcf81478f61ceceb3b5bb653e06d564c8477aa7d984d95"
	path := "/v2/kindest/node/manifests/" + digest
	send := func(agent, client string) {
		r := httptest.NewRequest("HEAD", path, nil)
		r.RemoteAddr = client
		r.Header.Set("User-Agent", agent)
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	send("go-containerregistry/v0.22.1", "127.0.0.1:40000") // the image set's check
	d, _ := name.NewDigest("127.0.0.1:5000/kindest/node:v1.34.11@" + digest)
	log, err := parseAccess(b.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if dockerResolved(log, d) {
		t.Error("go-containerregistry's HEAD counted as Docker's")
	}
	send("docker/26.1.5 go/go1.22.2 git-commit/a72d7cd kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/26.1.5 \\(linux\\))", "172.18.0.2:40001")
	if log, _ = parseAccess(b.String()); dockerResolved(log, d) {
		t.Error("a HEAD from another address counted as this host's Docker")
	}
	send("docker/26.1.5 go/go1.22.2 git-commit/a72d7cd kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/26.1.5 \\(linux\\))", "127.0.0.1:40002")
	if log, _ = parseAccess(b.String()); !dockerResolved(log, d) {
		t.Errorf("Docker's HEAD from loopback not counted:\n%s", b.String())
	}
	if got := log[2].agent; !strings.HasPrefix(got, "docker/26.1.5 go/") {
		t.Errorf("agent read back as %q", got)
	}
}
