package vmi

import v1 "kubevirt.io/api/core/v1"

// WithSerialBIOS selects BIOS (SeaBIOS) and sends its output, and iPXE's, to the serial console
// (spec.domain.firmware.bootloader.bios.useSerial).
func WithSerialBIOS() Option {
	return func(v *v1.VirtualMachineInstance) {
		bootloader(v).BIOS = &v1.BIOS{UseSerial: ptr(true)}
	}
}

// WithEFI selects EFI (OVMF) with secure boot on or off. Secure boot must be set explicitly
// because KubeVirt defaults it to on, and on needs SMM, so WithEFI(true) enables SMM too (the
// one dependency between fields a builder takes care of). PXE clients need WithEFI(false): the
// iPXE ROM is not signed.
func WithEFI(secureBoot bool) Option {
	return func(v *v1.VirtualMachineInstance) {
		bootloader(v).EFI = &v1.EFI{SecureBoot: ptr(secureBoot)}
		if secureBoot {
			if v.Spec.Domain.Features == nil {
				v.Spec.Domain.Features = &v1.Features{}
			}
			v.Spec.Domain.Features.SMM = &v1.FeatureState{Enabled: ptr(true)}
		}
	}
}

// bootloader returns spec.domain.firmware.bootloader, creating the path to it.
func bootloader(v *v1.VirtualMachineInstance) *v1.Bootloader {
	if v.Spec.Domain.Firmware == nil {
		v.Spec.Domain.Firmware = &v1.Firmware{}
	}
	if v.Spec.Domain.Firmware.Bootloader == nil {
		v.Spec.Domain.Firmware.Bootloader = &v1.Bootloader{}
	}
	return v.Spec.Domain.Firmware.Bootloader
}

func ptr[T any](v T) *T { return &v }
