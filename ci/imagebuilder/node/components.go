package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
)

// kubernetes builds the Kubernetes commands from m, the k8s.io/kubernetes module, version-stamped.
func (b *builder) kubernetes(ctx context.Context, m build.Module) (string, error) {
	gomod, err := os.ReadFile(m.GoMod)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", m.GoMod, err)
	}
	replace, err := stagingReplaces(string(gomod), stagingVersion)
	if err != nil {
		return "", fmt.Errorf("k8s.io/kubernetes@%s: %w", KubernetesVersion, err)
	}
	bins := map[string]string{}
	for _, bin := range kubeBinaries() {
		bins[bin] = "k8s.io/kubernetes/cmd/" + bin
	}
	return build.GoBuild{
		Name:    "kubernetes-" + KubernetesVersion,
		Require: map[string]string{"k8s.io/kubernetes": KubernetesVersion},
		Replace: replace,
		Bins:    bins,
		Ldflags: kubeLdflags(KubernetesVersion, m.Sum, m.Time),
	}.Build(ctx, b.o)
}

// stagingReplaces turns k8s.io/kubernetes's `k8s.io/x => ./staging/src/k8s.io/x` lines, which
// only work inside its own repository, into replacements by the published modules of version.
func stagingReplaces(gomod, version string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "replace "))
		if len(f) == 3 && f[1] == "=>" && strings.HasPrefix(f[2], "./staging/src/") {
			out[f[0]] = f[0] + " " + version
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ./staging replace directives in go.mod")
	}
	return out, nil
}

// kubeLdflags stamps the version into both places Kubernetes reads it from: unstamped binaries
// say v0.0.0-master and kubeadm refuses them. A module from the proxy carries no VCS commit, so
// gitCommit holds the module's h1 hash, which names its source just as exactly; buildDate is the
// version's time, so the same inputs give the same binaries.
func kubeLdflags(version, sum, date string) string {
	major, minor := "", ""
	if parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		for _, kv := range [][2]string{
			{"gitVersion", version}, {"gitMajor", major}, {"gitMinor", minor},
			{"gitCommit", sum}, {"gitTreeState", "clean"}, {"buildDate", date},
		} {
			flags = append(flags, "-X", pkg+"."+kv[0]+"="+kv[1])
		}
	}
	return strings.Join(flags, " ")
}

// etcd builds the etcd server.
func (b *builder) etcd(ctx context.Context) (string, error) {
	return build.GoBuild{
		Name:    "etcd-" + etcdVersion,
		Require: map[string]string{"go.etcd.io/etcd/server/v3": etcdVersion},
		Bins:    map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
		Ldflags: "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-" + etcdVersion,
	}.Build(ctx, b.o)
}

// coreDNS builds CoreDNS with the plugins kubeadm's Corefile uses and no others: a main
// package of our own in the wrapper module, as CoreDNS documents for choosing plugins at
// compile time, in place of its module's main, which links every plugin it ships (the cloud
// providers' SDKs, tracing, dnstap: three times the compiling for nothing a kind cluster runs).
// The Corefile is read from m, the k8s.io/kubernetes module the node runs, so a kubeadm that
// asks for a plugin left out stops the build here instead of crash-looping CoreDNS in the cluster.
func (b *builder) coreDNS(ctx context.Context, m build.Module) (string, error) {
	manifests := filepath.Join(m.Dir, filepath.FromSlash(kubeadmDNSManifests))
	src, err := os.ReadFile(manifests)
	if err != nil {
		return "", fmt.Errorf("read kubeadm's Corefile: %w", err)
	}
	directives, err := corefileDirectives(string(src))
	if err != nil {
		return "", fmt.Errorf("%s: %w", manifests, err)
	}
	main, err := coreDNSMain(directives)
	if err != nil {
		return "", fmt.Errorf("kubeadm %s's Corefile (%s): %w", KubernetesVersion, kubeadmDNSManifests, err)
	}
	name := "coredns-" + coreDNSVersion
	return build.GoBuild{
		Name:    name,
		Require: map[string]string{"github.com/coredns/coredns": coreDNSVersion},
		Files:   map[string]string{"cmd/coredns/main.go": main},
		Bins:    map[string]string{"coredns": build.WrapperModule(name) + "/cmd/coredns"},
		Ldflags: "-s -w -X github.com/coredns/coredns/coremain.GitCommit=module-" + coreDNSVersion,
	}.Build(ctx, b.o)
}

// kubeadmDNSManifests is the file of k8s.io/kubernetes that holds the Corefile kubeadm installs.
const kubeadmDNSManifests = "cmd/kubeadm/app/phases/addons/dns/manifests.go"

// coreDNSPlugins maps each directive the CoreDNS build supports to the package of
// github.com/coredns/coredns that provides it: kubeadm's Corefile, plus log for whoever debugs
// the cluster's DNS.
var coreDNSPlugins = map[string]string{
	"cache":       "plugin/cache",
	"errors":      "plugin/errors",
	"forward":     "plugin/forward",
	"health":      "plugin/health",
	"kubernetes":  "plugin/kubernetes",
	"loadbalance": "plugin/loadbalance",
	"log":         "plugin/log",
	"loop":        "plugin/loop",
	"prometheus":  "plugin/metrics",
	"ready":       "plugin/ready",
	"reload":      "plugin/reload",
}

// coreDNSMain renders the main package: every plugin of coreDNSPlugins, once directives (the
// Corefile's) are all among them.
func coreDNSMain(directives []string) (string, error) {
	for _, d := range directives {
		if _, ok := coreDNSPlugins[d]; !ok {
			return "", fmt.Errorf("the Corefile uses the CoreDNS plugin %q, which the CoreDNS build leaves out (add it to coreDNSPlugins)", d)
		}
	}
	var s strings.Builder
	s.WriteString("// Code generated by pxe-conformance's image builder: CoreDNS with kubeadm's plugins. DO NOT EDIT.\n\npackage main\n\nimport (\n")
	pkgs := map[string]bool{}
	for _, p := range coreDNSPlugins {
		pkgs[p] = true
	}
	for _, p := range build.SortedKeys(pkgs) {
		fmt.Fprintf(&s, "\t_ \"github.com/coredns/coredns/%s\"\n", p)
	}
	s.WriteString("\n\t\"github.com/coredns/coredns/coremain\"\n)\n\nfunc main() { coremain.Run() }\n")
	return s.String(), nil
}

// corefileDirectives returns the directives of the server blocks of the Corefile in src, the
// Go source that declares kubeadm's CoreDNS ConfigMap: the first word of each line one brace
// deep, after Go template actions ({{ ... }}) are removed.
func corefileDirectives(src string) ([]string, error) {
	const key = "Corefile: |"
	i := strings.Index(src, key)
	if i < 0 {
		return nil, fmt.Errorf("no %q in kubeadm's CoreDNS manifests", key)
	}
	body := src[i+len(key):]
	if end := strings.Index(body, "`"); end >= 0 {
		body = body[:end]
	}
	var out []string
	seen := map[string]bool{}
	depth := 0
	for _, line := range strings.Split(body, "\n") {
		for {
			start := strings.Index(line, "{{")
			if start < 0 {
				break
			}
			end := strings.Index(line[start:], "}}")
			if end < 0 {
				return nil, fmt.Errorf("unclosed template action in Corefile line %q", line)
			}
			line = line[:start] + line[start+end+2:]
		}
		fields := strings.Fields(line)
		if depth == 1 && len(fields) > 0 && fields[0] != "{" && fields[0] != "}" && !seen[fields[0]] {
			seen[fields[0]] = true
			out = append(out, fields[0])
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth < 0 {
			return nil, fmt.Errorf("unbalanced braces in the Corefile at %q", strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no directives in the Corefile")
	}
	return out, nil
}

// crictl builds crictl for the node.
func (b *builder) crictl(ctx context.Context) (string, error) {
	return build.GoBuild{
		Name:    "cri-tools-" + criToolsVersion,
		Require: map[string]string{"sigs.k8s.io/cri-tools": criToolsVersion},
		Bins:    map[string]string{"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
		Ldflags: "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=" + criToolsVersion,
	}.Build(ctx, b.o)
}

// cniPluginBinaries builds the standard CNI plugins for /opt/cni/bin: network.CNIPlugins, the
// build the cni-plugins image takes its plugins from too.
func (b *builder) cniPluginBinaries(ctx context.Context) (string, error) {
	return network.CNIPlugins().Build(ctx, b.o)
}
