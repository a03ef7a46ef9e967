package kubevirt

import (
	"context"

	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
)

// EmulationNeeded reports whether KubeVirt must emulate guests (useEmulation) on nodes that run
// on this machine, as kind nodes do, with the reason: true unless KVM can run a guest here.
func EmulationNeeded(ctx context.Context) (bool, string) {
	ok, why := cluster.KVMUsable(ctx)
	if ok {
		return false, "KVM runs guests: " + why
	}
	return true, "KVM cannot run guests: " + why
}
