// Package procedure is the documented PXE procedure, written once: the steps from a guest's
// start to the assertions on its interfaces (firmware, boot menu, iPXE on the bridge
// interface, the boot screen, the PXE server's DHCP answer, kernel and initramfs served, the
// guest's ready line, SSH with a pinned host key, a console login, eth1 with the MAC and no
// address, eth0 addressed), each bounded by its own settings.Timeouts field and failing with a
// message that says what the guest or the PXE server did instead.
//
// The steps run against a Target: the guest's serial console, its screen, its SSH port and the
// PXE server's per-MAC event log. The suite's KubeVirt VMI with its PXE server pod
// (framework/e2e), the local lab's QEMU guest with its in-process PXE server (framework/lab)
// and the lab cluster's proof (ci/cluster) are targets; the steps never ask which one they
// drive. The documented VMI itself is built by framework/vmi's PXEClient.
package procedure
