// Package nmstate drives kubernetes-nmstate (nmstate.io) through the Kubernetes API: the
// NodeNetworkConfigurationPolicy that configures a network on the nodes, the
// NodeNetworkConfigurationEnactments that report each node's outcome, and the NodeNetworkStates
// that report each node's interfaces. It uses the dynamic client on unstructured objects, so the
// suite needs no kubernetes-nmstate Go module.
//
// Builders (Policy, LinuxBridge, Absent) set fields and nothing more. Client's calls take a
// context first and return errors that name the object and the condition awaited or seen; a
// failing enactment ends a wait at once with the enactment's own message. CreateBridge returns
// a Bridge handle whose Remove undoes exactly what it did: the same policy with every interface
// absent, then the policy's deletion, and WaitRestored checks that every node's interfaces are
// back as they were before.
package nmstate
