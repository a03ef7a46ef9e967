// Package multus installs Multus (thin plugin) and the bridge, static, tuning and host-local
// CNI plugins on every node of a cluster, and removes them again.
//
// InstallMultus and InstallCNIPlugins apply the manifests in fixtures/manifests through
// framework/apply, run them from the offline builder's images (or WithImage's: Multus's may be
// upstream's thin image, whose /install_multus provides the plugin, while pxec-cni-setup runs
// from the CNI plugins image, WithSetupImage), and wait until the DaemonSet is ready on every
// node. A cluster that already runs a Multus of its own (a
// vendor's) gets nothing; an object that exists and is not ours (the CRD, say) is used and
// never changed or removed. Uninstall takes out only what Install created: the DaemonSet
// first, then a cleanup pod per node removes the binaries and configs it copied, then the rest
// newest first. Every wait is bounded by an option or a documented default.
//
// It also reads what Multus did for a pod (MissingAttachments, from the Network Plumbing
// Working Group's annotations) and, for the fault specs, stops a Multus DaemonSet and restores
// it (Stop).
package multus
