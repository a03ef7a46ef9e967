// Package network prepares the layer-2 network a PXE-booted virtual machine needs on a
// Kubernetes cluster: the Linux bridge on each node, whether the nodes carry 802.1Q VLANs, and
// the NetworkAttachmentDefinitions that put pods and VMIs on the bridge.
//
// Everything that changes a node returns a handle that undoes exactly what it did and nothing
// else: a bridge or a firewall rule that was already there (an operator's bridge) is reported,
// used and left alone. Node commands go through a framework/nodeexec Runner. The NAD builders
// make no client calls; they validate their input and name the offending field and value.
// Installing Multus and the bridge CNI plugins is framework/multus's.
package network
