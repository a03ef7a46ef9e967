// Package e2e is what the suite's Ginkgo specs (suites/pxe) stand on: Setup connects to the
// cluster, runs framework/preflight's checks (Preflight, which ci/preflight also runs alone;
// nodes reached only through the API), refuses to start on a failed required one and builds
// the guest payload once per run; a Spec is one spec's namespace with what it creates there
// (NetworkAttachmentDefinitions, the PXE server pod, the VMI started as the procedure's guest),
// step timings, and the artifacts a failed spec leaves for its reader; BridgeByPolicy has
// kubernetes-nmstate make a bridge (framework/nmstate), and CreateBridge makes the run's own
// so when settings say bridge.create: nncp; Finish removes that bridge by the same policy with
// the bridge absent, removes what Setup created and checks that no spec left anything.
//
// The procedure's steps are not here: Spec.Boot hands the spec a framework/procedure Boot on
// its VMI (framework/vmiguest) and PXE server pod (framework/pxepod), the same steps the local
// lab and the lab cluster's proof run. It holds no Ginkgo or Gomega calls: every method returns
// an error that names what was awaited and what was seen, so the specs read as the procedure
// and the failure messages stand on their own.
package e2e
