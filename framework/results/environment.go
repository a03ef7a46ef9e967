package results

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// Environment is what a run ran on and with: environment.json in the bundle.
type Environment struct {
	// CollectedAt is when the environment was read, in UTC.
	CollectedAt time.Time `json:"collectedAt"`
	// Suite is the build of the suite that ran.
	Suite Build `json:"suite"`
	// Cluster is what the run read of the cluster.
	Cluster ClusterInfo `json:"cluster"`
	// Config is the run's effective configuration (timeouts as scaled for emulation).
	Config settings.Config `json:"config"`
}

// ClusterInfo is the cluster as read once by CollectEnvironment. Each item that could not be
// read leaves its value empty and says why in the field named after it with "Error".
type ClusterInfo struct {
	// Reached says whether the API server answered; Error says why not.
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitzero"`

	KubernetesVersion      string `json:"kubernetesVersion,omitzero"`
	KubernetesVersionError string `json:"kubernetesVersionError,omitzero"`

	Nodes      []NodeInfo `json:"nodes,omitzero"`
	NodesError string     `json:"nodesError,omitzero"`

	KubeVirt      []KubeVirtInfo `json:"kubevirt,omitzero"`
	KubeVirtError string         `json:"kubevirtError,omitzero"`

	Multus      *MultusInfo `json:"multus,omitzero"`
	MultusError string      `json:"multusError,omitzero"`
}

// NodeInfo is one node: what the API says of it and what a node probe saw on it.
type NodeInfo struct {
	Name             string `json:"name"`
	Ready            bool   `json:"ready"`
	Schedulable      bool   `json:"schedulable"`
	OSImage          string `json:"osImage"`
	KernelVersion    string `json:"kernelVersion"`
	ContainerRuntime string `json:"containerRuntime"`
	KubeletVersion   string `json:"kubeletVersion"`
	Architecture     string `json:"architecture"`
	// Bridges are the Linux bridges in the node's host network namespace.
	Bridges      []string `json:"bridges,omitzero"`
	BridgesError string   `json:"bridgesError,omitzero"`
	// CNIPlugins are the binaries in the node's /opt/cni/bin, when the probe can see it.
	CNIPlugins      []string `json:"cniPlugins,omitzero"`
	CNIPluginsError string   `json:"cniPluginsError,omitzero"`
}

// KubeVirtInfo is one KubeVirt resource.
type KubeVirtInfo struct {
	Namespace            string   `json:"namespace"`
	Name                 string   `json:"name"`
	Version              string   `json:"version"`
	Phase                string   `json:"phase"`
	Available            bool     `json:"available"`
	UseEmulation         bool     `json:"useEmulation"`
	FeatureGates         []string `json:"featureGates"`
	DisabledFeatureGates []string `json:"disabledFeatureGates,omitzero"`
}

// MultusInfo says whether a Multus DaemonSet runs, and which.
type MultusInfo struct {
	Running    bool            `json:"running"`
	DaemonSets []DaemonSetInfo `json:"daemonSets,omitzero"`
}

// DaemonSetInfo is a DaemonSet's rollout.
type DaemonSetInfo struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Images    []string `json:"images"`
	Desired   int32    `json:"desired"`
	Ready     int32    `json:"ready"`
}

// Cluster is how CollectEnvironment reads a cluster.
type Cluster struct {
	Kube kubernetes.Interface
	// KubeVirt reads KubeVirt resources (a KubevirtClient's GeneratedKubeVirtClient().KubevirtV1()).
	KubeVirt kvcorev1.KubeVirtsGetter
	// Node runs the node probes; nil reads nodes through the API alone.
	Node nodeexec.Runner
}

// probeParallelism is how many nodes are probed at once: a probe is a pod's whole life, and a
// large cluster should not wait for its nodes one by one, nor get a pod on every node at once.
const probeParallelism = 4

// CollectEnvironment reads c once and records cfg as the run's configuration. Each read is
// bounded by cfg.Timeouts.NodeProbe (the probe pods by their runner's own bound). An item that
// cannot be read holds its error text; the returned error joins them, for the run's log only.
func CollectEnvironment(ctx context.Context, c Cluster, cfg settings.Config) (*Environment, error) {
	env := newEnvironment(cfg)
	ci := &env.Cluster
	bound := cfg.Timeouts.NodeProbe
	var errs []error
	failed := func(dst *string, what string, err error) {
		*dst = err.Error()
		errs = append(errs, fmt.Errorf("environment: %s: %w", what, err))
	}

	var err error
	if ci.KubernetesVersion, err = serverVersion(ctx, c.Kube.Discovery(), bound); err != nil {
		failed(&ci.KubernetesVersionError, "Kubernetes version", err)
	}

	if ci.Nodes, err = readNodes(ctx, c.Kube, bound); err != nil {
		failed(&ci.NodesError, "nodes", err)
	} else if c.Node != nil {
		probeNodes(ctx, c.Node, ci.Nodes)
	} else {
		for i := range ci.Nodes {
			ci.Nodes[i].BridgesError = "not probed: the run has no node runner"
			ci.Nodes[i].CNIPluginsError = ci.Nodes[i].BridgesError
		}
	}
	if ci.KubeVirt, err = readKubeVirt(ctx, c.KubeVirt, bound); err != nil {
		failed(&ci.KubeVirtError, "KubeVirt", err)
	}
	if ci.Multus, err = readMultus(ctx, c.Kube, bound); err != nil {
		failed(&ci.MultusError, "Multus", err)
	}
	// Any answer shows the API server was reached; without one, the version's error says why.
	ci.Reached = ci.KubernetesVersionError == "" || ci.NodesError == "" || ci.KubeVirtError == "" || ci.MultusError == ""
	if !ci.Reached {
		ci.Error = ci.KubernetesVersionError
	}
	return env, errors.Join(errs...)
}

// NotRead is the environment of a run that did not read its cluster (a dry run, a failed
// setup), saying why in the cluster's error.
func NotRead(cfg settings.Config, why string) *Environment {
	env := newEnvironment(cfg)
	env.Cluster.Error = why
	return env
}

func newEnvironment(cfg settings.Config) *Environment {
	return &Environment{CollectedAt: time.Now().UTC(), Suite: ReadBuild(), Config: cfg}
}

// serverVersion asks for the API server's version within bound: discovery takes no context.
func serverVersion(ctx context.Context, d discovery.ServerVersionInterface, bound time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	type answer struct {
		v   *version.Info
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := d.ServerVersion()
		got <- answer{v, err}
	}()
	select {
	case a := <-got:
		if a.err != nil {
			return "", fmt.Errorf("read the server version: %w", a.err)
		}
		return a.v.GitVersion, nil
	case <-ctx.Done():
		return "", fmt.Errorf("read the server version: no answer within %s: %w", bound, ctx.Err())
	}
}

func readNodes(ctx context.Context, kube kubernetes.Interface, bound time.Duration) ([]NodeInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var nodes []NodeInfo
	for _, n := range list.Items {
		i := n.Status.NodeInfo
		nodes = append(nodes, NodeInfo{
			Name: n.Name, Ready: nodeReady(n), Schedulable: !n.Spec.Unschedulable,
			OSImage: i.OSImage, KernelVersion: i.KernelVersion, ContainerRuntime: i.ContainerRuntimeVersion,
			KubeletVersion: i.KubeletVersion, Architecture: i.Architecture,
		})
	}
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return nodes, nil
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cniDir is where CNI plugins live on a node, by the CNI specification's convention.
const cniDir = "/opt/cni/bin"

// probeScript prints the node's bridges from sysfs, and the CNI plugins only when cniDir is a
// mount in the probe's container: a host-network pod sees the host's links but not its files,
// and a directory of the probe image's own must not pass for the node's.
const probeScript = `for d in /sys/class/net/*/bridge; do
  [ -d "$d" ] || continue
  l=${d%/bridge}; echo "bridge=${l##*/}"
done
if awk '$5 == "` + cniDir + `" { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  echo "cni=$(ls ` + cniDir + ` | tr '\n' ' ')"
else
  echo "cni-unseen"
fi
`

// probeNodes fills in each Ready node's bridges and CNI plugins from one probe each.
func probeNodes(ctx context.Context, r nodeexec.Runner, nodes []NodeInfo) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, probeParallelism)
	for i := range nodes {
		n := &nodes[i]
		if !n.Ready {
			n.BridgesError = "not probed: the node is not Ready"
			n.CNIPluginsError = n.BridgesError
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			out, err := r.NodeExec(ctx, n.Name, "sh", "-c", probeScript)
			if err != nil {
				n.BridgesError = err.Error()
				n.CNIPluginsError = err.Error()
				return
			}
			parseProbe(string(out), n)
		})
	}
	wg.Wait()
}

// parseProbe reads probeScript's output into n.
func parseProbe(out string, n *NodeInfo) {
	n.Bridges = []string{}
	n.CNIPluginsError = fmt.Sprintf("unexpected probe output %q", out)
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch k, v, _ := strings.Cut(line, "="); {
		case k == "bridge" && v != "":
			n.Bridges = append(n.Bridges, v)
		case k == "cni":
			n.CNIPlugins, n.CNIPluginsError = strings.Fields(v), ""
			if n.CNIPlugins == nil {
				n.CNIPlugins = []string{}
			}
		case line == "cni-unseen":
			n.CNIPluginsError = "not visible to the node probe: its host-network pod does not mount the node's " + cniDir
		}
	}
}

func readKubeVirt(ctx context.Context, kv kvcorev1.KubeVirtsGetter, bound time.Duration) ([]KubeVirtInfo, error) {
	if kv == nil {
		return nil, errors.New("no KubeVirt client")
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	list, err := kv.KubeVirts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list KubeVirt resources: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, errors.New("no KubeVirt resource in the cluster")
	}
	var out []KubeVirtInfo
	for _, k := range list.Items {
		info := KubeVirtInfo{Namespace: k.Namespace, Name: k.Name, Version: k.Status.ObservedKubeVirtVersion,
			Phase: string(k.Status.Phase), FeatureGates: []string{}}
		for _, c := range k.Status.Conditions {
			if c.Type == "Available" && c.Status == corev1.ConditionTrue {
				info.Available = true
			}
		}
		if dc := k.Spec.Configuration.DeveloperConfiguration; dc != nil {
			info.UseEmulation = dc.UseEmulation
			info.FeatureGates = append(info.FeatureGates, dc.FeatureGates...)
			info.DisabledFeatureGates = dc.DisabledFeatureGates
		}
		out = append(out, info)
	}
	return out, nil
}

// readMultus finds the DaemonSets, in any namespace, whose name says Multus.
func readMultus(ctx context.Context, kube kubernetes.Interface, bound time.Duration) (*MultusInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	list, err := multus.DaemonSets(ctx, kube)
	if err != nil {
		return nil, err
	}
	m := &MultusInfo{}
	for _, ds := range list {
		d := DaemonSetInfo{Namespace: ds.Namespace, Name: ds.Name, Images: []string{},
			Desired: ds.Status.DesiredNumberScheduled, Ready: ds.Status.NumberReady}
		for _, c := range ds.Spec.Template.Spec.Containers {
			d.Images = append(d.Images, c.Image)
		}
		m.DaemonSets = append(m.DaemonSets, d)
		m.Running = m.Running || d.Ready > 0
	}
	return m, nil
}
