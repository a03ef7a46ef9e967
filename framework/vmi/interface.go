package vmi

import v1 "kubevirt.io/api/core/v1"

// InterfaceOption sets fields of an interface that BridgeInterface or MasqueradeInterface is
// building.
type InterfaceOption func(*v1.Interface)

// WithInterface appends iface to spec.domain.devices.interfaces; the guest sees the interfaces
// in this order (the first is eth0).
func WithInterface(iface v1.Interface) Option {
	return func(v *v1.VirtualMachineInstance) {
		v.Spec.Domain.Devices.Interfaces = append(v.Spec.Domain.Devices.Interfaces, iface)
	}
}

// BridgeInterface returns an interface named name with the bridge binding, which puts the guest
// on the network's layer 2 segment (where a PXE server can answer its DHCP).
func BridgeInterface(name string, opts ...InterfaceOption) v1.Interface {
	iface := v1.Interface{
		Name:                   name,
		InterfaceBindingMethod: v1.InterfaceBindingMethod{Bridge: &v1.InterfaceBridge{}},
	}
	for _, opt := range opts {
		opt(&iface)
	}
	return iface
}

// MasqueradeInterface returns an interface named name with the masquerade binding, the usual
// binding for the pod network.
func MasqueradeInterface(name string, opts ...InterfaceOption) v1.Interface {
	iface := v1.Interface{
		Name:                   name,
		InterfaceBindingMethod: v1.InterfaceBindingMethod{Masquerade: &v1.InterfaceMasquerade{}},
	}
	for _, opt := range opts {
		opt(&iface)
	}
	return iface
}

// WithMAC sets the interface's macAddress.
func WithMAC(mac string) InterfaceOption {
	return func(iface *v1.Interface) {
		iface.MacAddress = mac
	}
}

// WithBootOrder sets the interface's bootOrder; KubeVirt gives only interfaces with a boot
// order a boot ROM, so this is what makes an interface PXE boot.
func WithBootOrder(order uint) InterfaceOption {
	return func(iface *v1.Interface) {
		iface.BootOrder = &order
	}
}
