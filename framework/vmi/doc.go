// Package vmi builds KubeVirt VirtualMachineInstances (kubevirt.io/api/core/v1) for PXE specs.
//
// New takes functional options that set fields and nothing more: no client calls, no defaults
// beyond the object's type and name, no validation, one subject per file. A builder never fails
// and never panics; a value the API type cannot hold (a memory size that does not parse) is kept
// where Validate finds it. Validate, kept apart from the builders, refuses what a PXE client VMI
// cannot work with (a malformed MAC, a boot order anywhere but on the PXE interface, an
// interface without its network, EFI secure boot with an unsigned iPXE), naming each field path
// and value, before anything is sent to a cluster.
package vmi
