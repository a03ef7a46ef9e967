package vmi

import v1 "kubevirt.io/api/core/v1"

// WithNodeSelector sets the node label key to value in spec.nodeSelector, for instance to keep
// the VMI on the node whose bridge the PXE server is on.
func WithNodeSelector(key, value string) Option {
	return func(v *v1.VirtualMachineInstance) {
		if v.Spec.NodeSelector == nil {
			v.Spec.NodeSelector = map[string]string{}
		}
		v.Spec.NodeSelector[key] = value
	}
}
