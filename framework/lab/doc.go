// Package lab runs the documented PXE procedure in a local QEMU lab, with no cluster: a network
// namespace holds a Linux bridge (the node bridge), our PXE server on it (the PXE server on the
// same VLAN), a tap device per guest (the NetworkAttachmentDefinition's attachment), and QEMU
// guests shaped like KubeVirt VMIs (eth0 on user-mode networking standing in for the pod network,
// eth1 on the bridge with the specified MAC and boot order 1).
//
// Boot runs framework/procedure's steps on a QEMU guest with the lab's in-process PXE server,
// one verdict line per documented step; the suite runs the same steps on a VMI. It proves the
// parts every KubeVirt spec stands on (the PXE server, the guest payload, the
// console expecter, the SSH checker) before any cluster exists, and it is the benchmark's bench.
// Everything it creates lives in its namespace: deleting the namespace removes every link, and
// QEMU dies with the process that started it. Sweep removes what a killed run left.
package lab
