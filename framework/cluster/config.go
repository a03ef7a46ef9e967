package cluster

import (
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// kvmDevice is the device a node needs for KubeVirt to run guests with hardware acceleration.
const kvmDevice = kvm.Device

// renderConfig turns the options into the kind config CreateKind passes on: the given config
// (one control-plane node when it names none), the extra workers, and /dev/kvm on every node
// when kvm is set.
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
