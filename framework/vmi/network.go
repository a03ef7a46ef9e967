package vmi

import v1 "kubevirt.io/api/core/v1"

// WithNetwork appends network to spec.networks; an interface of the same name attaches to it.
func WithNetwork(network v1.Network) Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Spec.Networks = append(v.Spec.Networks, network)
	}
}

// PodNetwork returns the network named "default" that attaches to the pod network.
func PodNetwork() v1.Network {
	return v1.Network{
		Name:          "default",
		NetworkSource: v1.NetworkSource{Pod: &v1.PodNetwork{}},
	}
}

// MultusNetwork returns a network named name that attaches, through Multus, to the
// NetworkAttachmentDefinition nadName ("name" in the VMI's namespace, or "namespace/name").
func MultusNetwork(name, nadName string) v1.Network {
	return v1.Network{
		Name:          name,
		NetworkSource: v1.NetworkSource{Multus: &v1.MultusNetwork{NetworkName: nadName}},
	}
}
