package vmi

import v1 "kubevirt.io/api/core/v1"

// WithRNG adds a virtio-rng device, so the guest's dropbear does not wait for entropy to make
// its host key.
func WithRNG() Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Spec.Domain.Devices.Rng = &v1.Rng{}
	}
}

// WithAutoattachGraphicsDevice sets whether KubeVirt adds a graphics device; VNC screenshots of
// the boot screen need one.
func WithAutoattachGraphicsDevice(attach bool) Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Spec.Domain.Devices.AutoattachGraphicsDevice = &attach
	}
}
