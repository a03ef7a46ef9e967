package vmi

import v1 "kubevirt.io/api/core/v1"

// WithNamespace sets metadata.namespace.
func WithNamespace(namespace string) Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Namespace = namespace
	}
}

// WithLabel sets the label key to value in metadata.labels.
func WithLabel(key, value string) Option {
	return func(v *v1.VirtualMachineInstance) {
		if v.Labels == nil {
			v.Labels = map[string]string{}
		}
		v.Labels[key] = value
	}
}
