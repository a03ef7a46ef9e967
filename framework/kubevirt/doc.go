// Package kubevirt installs KubeVirt into a cluster and removes it again, and tells whether
// guests need emulation.
//
// Install applies an operator manifest (KubeVirt's own, or the lab's offline build from
// ci/imagebuilder/kubevirt) with server-side apply, optionally pointing the operator at each
// component's image (WithImages: pinned digests, a mirror, our own virt-handler), creates the
// KubeVirt custom resource with
// imagePullPolicy IfNotPresent and, when KVM cannot run guests, useEmulation, and waits for the
// resource to become Available. A cluster that already runs KubeVirt (a vendor's certification
// cluster, say) is detected and left exactly as it is; Uninstall then does nothing. Otherwise
// Uninstall deletes what Install created, in reverse order, and waits for the namespaces to go.
// Applying, recording and undoing are framework/apply's; this package adds what is KubeVirt's:
// the checks on the manifest, the resource, and the waits for Available and virt-api.
package kubevirt
