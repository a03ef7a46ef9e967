// Package cluster gives specs a Kubernetes cluster: a kind cluster it creates through kind's Go
// API (sigs.k8s.io/kind/pkg/cluster, no kind binary) from the offline node image or another
// (WithNodeImage: kind's own, pulled), or an existing cluster reached through a kubeconfig. The
// nodes' containerd can be sent to a registry under another address than its images' names
// carry (WithRegistryEndpoint: a registry on this host's loopback).
//
// A *Cluster undoes only what it did: Delete removes a cluster that CreateKind made (and the
// temporary kubeconfig it wrote), and does nothing to a cluster found with Existing. /dev/kvm is
// handed to the nodes only where framework/kvm's probe finds that it can run a guest. NodeExec
// (`docker exec` on a kind node, a framework/nodeexec Runner) is for the kind lab's own setup
// only; everything else reaches nodes through the API.
package cluster
