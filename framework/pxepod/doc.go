// Package pxepod runs the suite's PXE server (fixtures/pxe-server) as a pod on the PXE network
// of a Kubernetes cluster: the documented procedure's "PXE server on the same VLAN".
//
// Deploy creates the pod with a second interface, net1, on a NetworkAttachmentDefinition that
// gives it a fixed address on the node bridge (see framework/network.WithStaticIP). The image
// holds only the server; the guest payload (kernel, initramfs and iPXE's own loaders, see
// framework/bootimage) is streamed into the pod's emptyDir through the exec subresource once
// the container runs, so no registry or node path is needed for it and a vendor cluster only
// needs the small server image. The container waits for that upload to finish before it
// starts the server, so a client can never be handed a half-copied kernel.
//
// The server's per-MAC event log is read through the API server's pod proxy (GET /events on
// the server's HTTP port over the pod network), which works from outside the cluster and
// asserts what the server saw, not what a guest printed.
package pxepod
