// Package podstatus says why a pod will never run as asked, from its status and its events: a
// container that has exited or cannot start, a sandbox whose network a CNI plugin could not set
// up, a network attachment Multus did not make. Nothing a waiter does changes any of these, so
// every wait on a pod (the PXE server's, a VMI's virt-launcher) asks on each poll and fails at
// once on what it says, instead of running out its bound.
package podstatus
