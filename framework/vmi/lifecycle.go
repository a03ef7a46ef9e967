package vmi

import v1 "kubevirt.io/api/core/v1"

// WithTerminationGracePeriod sets spec.terminationGracePeriodSeconds; 0 makes deletion stop
// the guest at once (a PXE guest has nothing to shut down cleanly).
func WithTerminationGracePeriod(seconds int64) Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Spec.TerminationGracePeriodSeconds = &seconds
	}
}
