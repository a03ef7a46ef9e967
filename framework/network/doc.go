// Package network prepares the layer-2 network a PXE-booted virtual machine needs on a
// Kubernetes cluster: the Linux bridge on each node, the bridge CNI plugins, Multus, and the
// NetworkAttachmentDefinitions that put pods and VMIs on the bridge.
//
// Everything that changes a cluster or a node returns a handle that undoes exactly what it did
// and nothing else: a bridge, a firewall rule, a DaemonSet or a CRD that was already there (a
// vendor's Multus, an operator's bridge) is reported, used and left alone. Node commands go
// through a NodeRunner, which framework/cluster's Cluster satisfies. The NAD builders make no
// client calls; they validate their input and name the offending field and value.
package network
