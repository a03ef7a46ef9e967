// Package qemu starts a QEMU guest shaped like a KubeVirt VirtualMachineInstance, for the local
// lab: a pod-network NIC (user-mode networking, restrict=on, standing in for the pod network and
// KubeVirt's masquerade binding), a bridge NIC on a tap device with a chosen MAC and boot index
// (standing in for a bridge binding on a NetworkAttachmentDefinition), BIOS (SeaBIOS) or EFI
// (OVMF) firmware with output on the serial console, and the serial console on the process's
// standard streams.
//
// The accelerator is detected, not assumed: KVM is used only where it can run a guest, and QEMU's
// TCG emulation elsewhere (on this project's CI machines /dev/kvm either is missing or cannot run
// guests).
package qemu
