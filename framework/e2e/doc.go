// Package e2e is what the suite's Ginkgo specs (suites/pxe) stand on: Setup connects to the
// cluster, runs the preflight checks and builds the guest payload once per run; a Spec is one
// spec's namespace with what it creates there (NetworkAttachmentDefinitions, the PXE server pod,
// the VMI), the steps of the documented procedure as methods, step timings, and the artifacts
// a failed spec leaves for its reader.
//
// It holds no Ginkgo or Gomega calls: every method returns an error that names what was
// awaited and what was seen, so the specs read as the procedure and the failure messages
// stand on their own.
package e2e
