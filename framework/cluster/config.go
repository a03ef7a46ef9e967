package cluster

import (
	"fmt"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// kvmDevice is the device a node needs for KubeVirt to run guests with hardware acceleration.
const kvmDevice = kvm.Device

// registryHostsDir is where the nodes' containerd looks for a hosts.toml per registry host.
const registryHostsDir = "/etc/containerd/certs.d"

// registryConfigPatch points containerd's CRI plugin at registryHostsDir (containerd 1.5 and
// later; kind's local-registry guide does the same).
const registryConfigPatch = `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "` + registryHostsDir + `"`

// renderConfig turns the options into the kind config CreateKind passes on: the given config
// (one control-plane node when it names none), the extra workers, /dev/kvm on every node when
// kvm is set, and containerd's registry hosts directory when WithRegistryEndpoint names one.
func renderConfig(o createOptions, useKVM bool) *v1alpha4.Cluster {
	cfg := &v1alpha4.Cluster{}
	if o.config != nil {
		cfg = o.config.DeepCopy()
	}
	cfg.Kind = "Cluster"
	cfg.APIVersion = "kind.x-k8s.io/v1alpha4"
	if len(cfg.Nodes) == 0 {
		cfg.Nodes = []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}}
	}
	for i := 0; i < o.workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole})
	}
	if len(o.registries) > 0 {
		cfg.ContainerdConfigPatches = append(cfg.ContainerdConfigPatches, registryConfigPatch)
	}
	if useKVM {
		for i := range cfg.Nodes {
			if !hasMount(cfg.Nodes[i], kvmDevice) {
				cfg.Nodes[i].ExtraMounts = append(cfg.Nodes[i].ExtraMounts, v1alpha4.Mount{HostPath: kvmDevice, ContainerPath: kvmDevice})
			}
		}
	}
	return cfg
}

func hasMount(n v1alpha4.Node, containerPath string) bool {
	for _, m := range n.ExtraMounts {
		if m.ContainerPath == containerPath {
			return true
		}
	}
	return false
}

// registryHosts renders the hosts.toml that sends containerd's pulls for a registry host to
// endpoint.
func registryHosts(endpoint string) string {
	return fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", endpoint)
}
