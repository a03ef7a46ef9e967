package vmi

import (
	v1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

// PXEInterface is the name of the documented VMI's bridge interface (eth1 in the guest).
const PXEInterface = "pxe-net"

// PXEClient is the documented PXE client, built in this one place for the suite, its negative
// cases and the lab cluster's proof: eth0 with the masquerade binding on the pod network; eth1
// (PXEInterface) with the bridge binding on the NetworkAttachmentDefinition nad, MAC mac and
// bootOrder 1; BIOS with serial output, or EFI without secure boot; 512Mi, a virtio RNG (the
// guest's sshd needs entropy at once), no disks, and no termination grace period. opts apply
// after these: a namespace, a node selector, WithoutBootOrder for the negative case.
func PXEClient(name, mac, nad string, fw firmware.Firmware, opts ...Option) *v1.VirtualMachineInstance {
	base := []Option{
		WithMemory("512Mi"),
		WithInterface(MasqueradeInterface("default")),
		WithNetwork(PodNetwork()),
		WithInterface(BridgeInterface(PXEInterface, WithMAC(mac), WithBootOrder(1))),
		WithNetwork(MultusNetwork(PXEInterface, nad)),
		WithRNG(),
		WithTerminationGracePeriod(0),
	}
	if fw == firmware.EFI {
		base = append(base, WithEFI(false))
	} else {
		base = append(base, WithSerialBIOS())
	}
	return New(name, append(base, opts...)...)
}

// WithoutBootOrder clears the boot order of the interface named iface, which then gets no boot
// ROM and is never tried (the negative case; validate such a VMI with ValidateNoBootOrder).
func WithoutBootOrder(iface string) Option {
	return func(v *v1.VirtualMachineInstance) {
		for i := range v.Spec.Domain.Devices.Interfaces {
			if v.Spec.Domain.Devices.Interfaces[i].Name == iface {
				v.Spec.Domain.Devices.Interfaces[i].BootOrder = nil
			}
		}
	}
}

// FirmwareOf says which firmware v boots with: EFI when its bootloader names EFI, else BIOS.
func FirmwareOf(v *v1.VirtualMachineInstance) firmware.Firmware {
	if f := v.Spec.Domain.Firmware; f != nil && f.Bootloader != nil && f.Bootloader.EFI != nil {
		return firmware.EFI
	}
	return firmware.BIOS
}

// WithBootOrderOn sets bootOrder order on the interface named iface: for a negative case that
// gives two devices one boot order, which KubeVirt must refuse.
func WithBootOrderOn(iface string, order uint) Option {
	return func(v *v1.VirtualMachineInstance) {
		for i := range v.Spec.Domain.Devices.Interfaces {
			if v.Spec.Domain.Devices.Interfaces[i].Name == iface {
				v.Spec.Domain.Devices.Interfaces[i].BootOrder = &order
			}
		}
	}
}
