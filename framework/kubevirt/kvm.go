package kubevirt

import (
	"context"

	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// EmulationNeeded reports whether KubeVirt must emulate guests (useEmulation) on nodes that run
// on this machine, as kind nodes do, with the reason: true unless KVM can run a guest here.
func EmulationNeeded(ctx context.Context) (bool, string) {
	v, err := kvm.Probe(ctx)
	switch {
	case err != nil:
		return true, "KVM not probed: " + err.Error()
	case v.Usable:
		return false, "KVM runs guests: " + v.Reason
	}
	return true, "KVM cannot run guests: " + v.Reason
}
