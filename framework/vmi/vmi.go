package vmi

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1 "kubevirt.io/api/core/v1"
)

// Option sets fields of a VirtualMachineInstance that New is building.
type Option func(*v1.VirtualMachineInstance)

// New returns a VirtualMachineInstance named name with the options applied in order (a later
// option overwrites what an earlier one set on the same field).
func New(name string, opts ...Option) *v1.VirtualMachineInstance {
	v := &v1.VirtualMachineInstance{
		TypeMeta: metav1.TypeMeta{
			APIVersion: v1.GroupVersion.String(),
			Kind:       "VirtualMachineInstance",
		},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	for _, opt := range opts {
		opt(v)
	}
	return v
}
