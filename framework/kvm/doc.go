// Package kvm is the one accelerator probe: it tells whether /dev/kvm runs guests on this host,
// and why. Every caller that starts guests asks it, the QEMU lab and its tests as well as the
// kind cluster (which hands /dev/kvm to its nodes) and KubeVirt's installer (which sets
// useEmulation): none trusts a /dev/kvm that merely opens, because some hosts offer one whose
// guests triple-fault or hang.
package kvm
