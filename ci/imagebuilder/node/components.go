package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// kubernetes builds the Kubernetes commands from k8s.io/kubernetes, version-stamped.
func (b *builder) kubernetes(ctx context.Context) (string, error) {
	m, err := build.DownloadModule(ctx, b.cache, "k8s.io/kubernetes", KubernetesVersion)
	if err != nil {
		return "", err
	}
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
	return b.run(ctx, goBuild{
		name:    "kubernetes-" + KubernetesVersion,
		require: map[string]string{"k8s.io/kubernetes": KubernetesVersion},
		replace: replace,
		bins:    bins,
		ldflags: kubeLdflags(KubernetesVersion, m.Sum, m.Time),
	})
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
	return b.run(ctx, goBuild{
		name:    "etcd-" + etcdVersion,
		require: map[string]string{"go.etcd.io/etcd/server/v3": etcdVersion},
		bins:    map[string]string{"etcd": "go.etcd.io/etcd/server/v3"},
		ldflags: "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-" + etcdVersion,
	})
}

// coreDNS builds CoreDNS with the plugin set its module ships.
func (b *builder) coreDNS(ctx context.Context) (string, error) {
	return b.run(ctx, goBuild{
		name:    "coredns-" + coreDNSVersion,
		require: map[string]string{"github.com/coredns/coredns": coreDNSVersion},
		bins:    map[string]string{"coredns": "github.com/coredns/coredns"},
		ldflags: "-s -w -X github.com/coredns/coredns/coremain.GitCommit=module-" + coreDNSVersion,
	})
}

// crictl builds crictl for the node.
func (b *builder) crictl(ctx context.Context) (string, error) {
	return b.run(ctx, goBuild{
		name:    "cri-tools-" + criToolsVersion,
		require: map[string]string{"sigs.k8s.io/cri-tools": criToolsVersion},
		bins:    map[string]string{"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
		ldflags: "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=" + criToolsVersion,
	})
}

// cniPluginBinaries builds the standard CNI plugins for /opt/cni/bin.
func (b *builder) cniPluginBinaries(ctx context.Context) (string, error) {
	const mod = "github.com/containernetworking/plugins"
	bins := map[string]string{}
	for name, pkg := range cniPlugins() {
		bins[name] = mod + "/" + pkg
	}
	return b.run(ctx, goBuild{
		name:    "cni-plugins-" + CNIPluginsVersion,
		require: map[string]string{mod: CNIPluginsVersion},
		bins:    bins,
		ldflags: "-s -w -X " + mod + "/pkg/utils/buildversion.BuildVersion=" + CNIPluginsVersion,
	})
}
