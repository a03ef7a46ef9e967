package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// runMarker is set in the environment of every process of an interrupted run, so that a
// process that left the run's group (a daemon, a reparented child) is still found as its own.
const runMarker = "PXEC_INTERRUPT_RUN"

// state is what may be left behind, each kind as a set of names.
type state map[string][]string

// since lists what after has that before had not, as "<kind> <name>".
func (after state) since(before state) []string {
	var left []string
	for _, kind := range slices.Sorted(mapsKeys(after)) {
		for _, name := range after[kind] {
			if !slices.Contains(before[kind], name) {
				left = append(left, kind+" "+name)
			}
		}
	}
	return left
}

func mapsKeys(m state) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// tempName matches what the project's runs put in temporary and work folders.
var tempName = regexp.MustCompile(`^(pxec|pxe-conformance|kind-|image-|\.tmp-)`)

// look reads what a run of make e2e against cluster could leave behind.
func look(ctx context.Context, cluster string, onLab bool) (state, error) {
	s := state{}
	lines := func(kind string, args ...string) error {
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
		if err != nil {
			return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
		s[kind] = strings.Fields(string(out))
		return nil
	}
	if err := lines("container", "docker", "ps", "-a", "--format", "{{.Names}}"); err != nil {
		return nil, err
	}
	s["container"] = slices.DeleteFunc(s["container"], func(n string) bool { return !strings.HasPrefix(n, cluster+"-") })
	if err := lines("image", "docker", "images", "--format", "{{.Repository}}:{{.Tag}}"); err != nil {
		return nil, err
	}
	s["image"] = slices.DeleteFunc(s["image"], func(n string) bool { return strings.Contains(n, "<none>") })
	if err := lines("docker-network", "docker", "network", "ls", "--format", "{{.Name}}"); err != nil {
		return nil, err
	}
	if err := lines("netns", "ip", "netns", "list"); err != nil {
		return nil, err
	}
	// ip netns list prints "name (id: n)": keep the names.
	s["netns"] = slices.DeleteFunc(s["netns"], func(n string) bool { return strings.HasPrefix(n, "(") || strings.HasSuffix(n, ")") })

	cache := build.CacheDir()
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (strings.HasPrefix(f[1], cache) || strings.HasPrefix(f[1], os.TempDir())) {
			s["mount"] = append(s["mount"], f[1])
		}
	}
	// The run's TMPDIR is its own (interrupt); the cache is shared with whatever else builds.
	for _, dir := range []string{cache, filepath.Join(cache, "work")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if tempName.MatchString(e.Name()) && !strings.HasSuffix(e.Name(), ".kubeconfig") {
				s["temporary"] = append(s["temporary"], filepath.Join(dir, e.Name()))
			}
		}
	}
	kubeconfig := filepath.Join(cache, "kind-"+cluster+".kubeconfig")
	if _, err := os.Stat(kubeconfig); err == nil && !running(ctx, cluster) {
		s["kubeconfig-without-cluster"] = []string{kubeconfig}
	}
	// Only QEMU in this cluster's node containers counts: other clusters on the host (a soak
	// running beside the lab phases did) start and stop VMIs of their own.
	nodes, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--no-trunc", "--filter", "name=^"+cluster+"-", "--format", "{{.ID}}").Output()
	if err != nil {
		return nil, fmt.Errorf("docker ps (the cluster's node IDs): %w", err)
	}
	s["process"] = processes(strings.Fields(string(nodes)))
	if onLab {
		ns, err := suiteNamespaces(ctx, kubeconfig)
		if err != nil {
			return nil, err
		}
		s["namespace"] = ns
	}
	return s, nil
}

// processes lists, as "<pid> <command>", every process that belongs to an interrupted run
// (runMarker in its environment), and every QEMU process in the pods of the nodes whose
// container IDs are given: a VMI's QEMU runs in virt-launcher's container and inherits nothing
// from the run, and its cgroup path names the kind node's container.
func processes(nodeIDs []string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		cmd := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		environ, _ := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		cgroup, _ := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
		inPod := strings.Contains(cmd, "qemu-system") && bytes.Contains(cgroup, []byte("kubepods")) &&
			slices.ContainsFunc(nodeIDs, func(id string) bool { return bytes.Contains(cgroup, []byte(id)) })
		if inPod || bytes.Contains(environ, []byte(runMarker+"=")) {
			if len(cmd) > 120 {
				cmd = cmd[:120] + "…"
			}
			out = append(out, pid+" "+cmd)
		}
	}
	return out
}

// suiteNamespaces lists the namespaces the suite makes (pxec-<random>, pxec-preflight-<random>,
// by their label).
func suiteNamespaces(ctx context.Context, kubeconfig string) ([]string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	list, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, n := range list.Items {
		if _, ours := n.Labels[suiteLabel]; ours || strings.HasPrefix(n.Name, "pxec-") {
			names = append(names, n.Name)
		}
	}
	return names, nil
}

// suiteLabel marks the namespaces the suite creates (framework/e2e's ownerLabel).
const suiteLabel = "pxe-conformance.io/spec"
