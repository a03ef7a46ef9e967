package vmi

import (
	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	v1 "kubevirt.io/api/core/v1"
)

// unparsedMemoryAnnotation carries a memory size that resource.ParseQuantity refused: a
// resource.Quantity cannot hold it, a builder must not fail, and Validate must name the value.
const unparsedMemoryAnnotation = "vmi.pxe-conformance.io/unparsed-memory"

// WithMemory sets spec.domain.resources.requests.memory to size, a Kubernetes quantity such as
// "512Mi".
func WithMemory(size string) Option {
	return func(v *v1.VirtualMachineInstance) {
		q, err := resource.ParseQuantity(size)
		if err != nil {
			// Drop an earlier valid size so that the last WithMemory wins, as with every option.
			delete(v.Spec.Domain.Resources.Requests, k8sv1.ResourceMemory)
			if v.Annotations == nil {
				v.Annotations = map[string]string{}
			}
			v.Annotations[unparsedMemoryAnnotation] = size
			return
		}
		delete(v.Annotations, unparsedMemoryAnnotation)
		if v.Spec.Domain.Resources.Requests == nil {
			v.Spec.Domain.Resources.Requests = k8sv1.ResourceList{}
		}
		v.Spec.Domain.Resources.Requests[k8sv1.ResourceMemory] = q
	}
}
