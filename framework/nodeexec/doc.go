// Package nodeexec runs commands on the nodes of a Kubernetes cluster.
//
// Runner is what node-level code (framework/network's bridge and VLAN checks) asks for. There
// are two: PodRunner, which reaches a node the way every cluster allows, through the API, with
// a short-lived pod on the node's host network; and framework/cluster's *Cluster, which runs
// `docker exec` on a kind node and is meant only for the kind lab's own setup (ci/cluster and
// framework/cluster). The suite uses PodRunner on every cluster, so the path a lab run
// exercises is the one a vendor's cluster gets. A command that fails is reported as a
// *command.Error (framework/command) with the command line and what it printed.
package nodeexec
