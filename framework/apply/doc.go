// Package apply puts the objects of a manifest into a cluster and takes out again exactly the
// ones it put there. The KubeVirt installer (framework/kubevirt) and the Multus and CNI plugin
// installer (framework/multus) both stand on it.
//
// Decode splits multi-document YAML into objects. An Applier creates each object or, when it
// exists already, adopts it as its Existing policy says: ApplyOver applies the manifest over it
// and keeps it, ReclaimOurs keeps it unchanged unless it carries ManagedByLabel (a leftover of
// an earlier run, which is updated and then treated as created). The Applier records what it
// created, in order, and waits for each CustomResourceDefinition it applies to be Established,
// so the next object may be of its kind. Undo deletes what was recorded, newest first, and
// nothing else: an object that existed before is never deleted. Every wait is bounded by an
// option or a documented default.
package apply
