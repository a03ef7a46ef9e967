package node

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
)

func TestImageNameIsTheClusterDefault(t *testing.T) {
	if got := ImageName(build.Options{}); got != cluster.DefaultNodeImage {
		t.Errorf("node.ImageName = %q but cluster.DefaultNodeImage = %q", got, cluster.DefaultNodeImage)
	}
}

func TestStagingReplacesUsePublishedModules(t *testing.T) {
	gomod := `module k8s.io/kubernetes

require k8s.io/api v0.0.0

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	github.com/other/mod => github.com/fork/mod v1.0.0
)
replace k8s.io/kubelet => ./staging/src/k8s.io/kubelet
`
	got, err := stagingReplaces(gomod, "v0.34.4")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"k8s.io/api":       "k8s.io/api v0.34.4",
		"k8s.io/client-go": "k8s.io/client-go v0.34.4",
		"k8s.io/kubelet":   "k8s.io/kubelet v0.34.4",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s => %q, want %q", k, got[k], v)
		}
	}
	if _, err := stagingReplaces("module x\n", "v0.34.4"); err == nil {
		t.Error("a go.mod without staging replaces was accepted")
	}
}

func TestKubeLdflagsStampBothVersionPackages(t *testing.T) {
	flags := kubeLdflags("v1.34.4", "h1:abc=", "2026-02-10T12:53:36Z")
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for _, kv := range []string{"gitVersion=v1.34.4", "gitMajor=1", "gitMinor=34", "gitCommit=h1:abc=", "gitTreeState=clean", "buildDate=2026-02-10T12:53:36Z"} {
			if !strings.Contains(flags, "-X "+pkg+"."+kv) {
				t.Errorf("ldflags lack -X %s.%s: %s", pkg, kv, flags)
			}
		}
	}
}

func TestPlanImagesChecksKubeadmList(t *testing.T) {
	good := `registry.k8s.io/kube-apiserver:v1.34.4
registry.k8s.io/kube-controller-manager:v1.34.4
registry.k8s.io/kube-scheduler:v1.34.4
registry.k8s.io/kube-proxy:v1.34.4
registry.k8s.io/coredns/coredns:v1.12.1
registry.k8s.io/pause:3.10.1
registry.k8s.io/etcd:3.6.5-0
`
	plan, err := planImages(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 7 {
		t.Fatalf("%d images planned, want 7", len(plan))
	}
	for _, img := range plan {
		if img.repo == "coredns" && (img.tag != "v1.12.1" || img.ref != "registry.k8s.io/coredns/coredns:v1.12.1") {
			t.Errorf("coredns parsed as %+v", img)
		}
	}
	cases := map[string]string{
		"other etcd":    strings.Replace(good, "etcd:3.6.5-0", "etcd:3.6.6-0", 1),
		"unknown image": good + "registry.k8s.io/kube-foo:v1.34.4\n",
		"missing pause": strings.Replace(good, "registry.k8s.io/pause:3.10.1\n", "", 1),
		"no tag":        good + "registry.k8s.io/etcd\n",
	}
	for name, list := range cases {
		if _, err := planImages(list); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSandboxImageReadsContainerdConfig(t *testing.T) {
	got, err := sandboxImage("[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n")
	if err != nil || got != "registry.k8s.io/pause:3.10" {
		t.Errorf("sandboxImage = %q, %v", got, err)
	}
	if _, err := sandboxImage("version = 2\n"); err == nil {
		t.Error("config without sandbox_image accepted")
	}
}

func TestContainerdConfigRunsRuncThroughWrapper(t *testing.T) {
	kindConfig := filepath.Join(kindModuleDir(t), "images/base/files/etc/containerd/config.toml")
	raw, err := os.ReadFile(kindConfig)
	if err != nil {
		t.Skipf("kind module not in the module cache: %v", err)
	}
	got, err := containerdConfig(raw, "/usr/local/bin/capdrop-runc")
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	if n := strings.Count(s, `BinaryName = "/usr/local/bin/capdrop-runc"`); n != strings.Count(s, "SystemdCgroup = true") || n == 0 {
		t.Errorf("%d BinaryName lines for %d runtimes:\n%s", n, strings.Count(s, "SystemdCgroup = true"), s)
	}
	if !strings.Contains(s, "restrict_oom_score_adj = true") || strings.Contains(s, "restrict_oom_score_adj = false") {
		t.Errorf("restrict_oom_score_adj not turned on:\n%s", s)
	}
	if _, err := containerdConfig([]byte("version = 2\n"), "/x"); err == nil {
		t.Error("a config without runtimes was accepted")
	}
}

func TestKindBaseSpecAddsHookAndDropsRlimits(t *testing.T) {
	in := `{"process":{"rlimits":[{"type":"RLIMIT_NOFILE"}],"cwd":"/"},"hooks":{"createContainer":[{"path":"/other"}]}}`
	out, err := kindBaseSpec([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Process map[string]any
		Hooks   struct{ CreateContainer []struct{ Path string } }
	}
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Process["rlimits"]; ok {
		t.Error("rlimits kept")
	}
	hooks := s.Hooks.CreateContainer
	if len(hooks) != 2 || hooks[0].Path != "/other" || hooks[1].Path != "/kind/bin/mount-product-files.sh" {
		t.Errorf("createContainer hooks %+v", hooks)
	}
}

func TestRenderCNIManifestNeedsPlaceholder(t *testing.T) {
	out, err := renderCNIManifest("image: PXEC_CNI_AGENT_IMAGE\n", "pxec.local/a:1")
	if err != nil || out != "image: pxec.local/a:1\n" {
		t.Errorf("render = %q, %v", out, err)
	}
	if _, err := renderCNIManifest("image: other\n", "pxec.local/a:1"); err == nil {
		t.Error("manifest without placeholder accepted")
	}
}

func TestRepositoryCNIManifestRenders(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(file), "../../../fixtures/kind/default-cni.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderCNIManifest(string(raw), "pxec.local/kind-cni-agent:x"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(string(raw), "would you kindly patch this file") {
		t.Error("default CNI manifest lost kind's marker for CONTROL_PLANE_ENDPOINT")
	}
}

func TestNormalizeRefMatchesContainerdNames(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/pause:3.10": "registry.k8s.io/pause:3.10",
		"pxec.local/x:1":             "pxec.local/x:1",
		"busybox:1":                  "docker.io/library/busybox:1",
		"user/img:1":                 "docker.io/user/img:1",
		"localhost/img:1":            "localhost/img:1",
	} {
		if got := normalizeRef(in); got != want {
			t.Errorf("normalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
}

func kindModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "sigs.k8s.io", "kind@"+KindVersion)
}

// kubeadmCoreDNSSource is the shape of kubeadm v1.34's CoreDNS ConfigMap in
// cmd/kubeadm/app/phases/addons/dns/manifests.go, template actions included.
const kubeadmCoreDNSSource = "\tCoreDNSConfigMap = `\napiVersion: v1\nkind: ConfigMap\ndata:\n  Corefile: |\n" +
	"    .:53 {\n        errors\n        health {\n           lameduck 5s\n        }\n        ready\n" +
	"        kubernetes {{ .DNSDomain }} in-addr.arpa ip6.arpa {\n           pods insecure\n           fallthrough in-addr.arpa ip6.arpa\n           ttl 30\n        }\n" +
	"        prometheus :9153\n        forward . /etc/resolv.conf {\n           max_concurrent 1000\n        }\n" +
	"        cache 30\n        {{- if .DNSDomain }} {\n           disable success {{ .DNSDomain }}\n           disable denial {{ .DNSDomain }}\n        }\n        {{- end }}\n" +
	"        loop\n        reload\n        loadbalance\n    }\n`\n\n\tOtherManifest = `\nerratic\n`\n"

func TestCorefileDirectivesReadsKubeadmsServerBlock(t *testing.T) {
	got, err := corefileDirectives(kubeadmCoreDNSSource)
	if err != nil {
		t.Fatal(err)
	}
	want := "errors health ready kubernetes prometheus forward cache loop reload loadbalance"
	if strings.Join(got, " ") != want {
		t.Errorf("directives = %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := coreDNSMain(got); err != nil {
		t.Errorf("kubeadm's directives refused: %v", err)
	}
}

func TestCoreDNSMainRefusesAPluginLeftOut(t *testing.T) {
	src := strings.Replace(kubeadmCoreDNSSource, "        loop\n", "        loop\n        rewrite name foo bar\n", 1)
	directives, err := corefileDirectives(src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = coreDNSMain(directives)
	if err == nil || !strings.Contains(err.Error(), `"rewrite"`) {
		t.Fatalf("coreDNSMain = %v, want an error naming rewrite", err)
	}
}

func TestCoreDNSMainImportsEveryPluginOnce(t *testing.T) {
	main, err := coreDNSMain([]string{"errors"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range coreDNSPlugins {
		if n := strings.Count(main, `"github.com/coredns/coredns/`+pkg+`"`); n != 1 {
			t.Errorf("%s imported %d times:\n%s", pkg, n, main)
		}
	}
	if !strings.Contains(main, "coremain.Run()") {
		t.Errorf("no coremain.Run in:\n%s", main)
	}
}

func TestCorefileDirectivesRefusesBrokenInput(t *testing.T) {
	for name, src := range map[string]string{
		"no Corefile":  "data: {}",
		"unbalanced":   "Corefile: |\n .:53 {\n errors\n }\n }\n`",
		"no directive": "Corefile: |\n .:53 {\n }\n`",
		"open action":  "Corefile: |\n .:53 {\n errors {{ .X\n }\n`",
	} {
		if _, err := corefileDirectives(src); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
