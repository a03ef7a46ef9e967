// Package preflight checks that a cluster can run the conformance suite, before it runs: one
// Check per thing the suite needs (KubeVirt Available, KVM or emulation, Multus, the bridge CNI
// plugins, kubernetes-nmstate, the bridges (expected on every node, or created by policy when
// settings say bridge.create: nncp), bridged traffic past netfilter, the screenshot subresource, the PXE
// server image, virt-launcher's serial console log, VLANs). Each check is required or optional
// and ends PASS, FAIL or SKIP (an optional part switched off in settings.Skip) with its reason
// and, when it did not pass, what to do.
//
// Run reads the cluster only through the API: nodes through nodeexec Runners (probe pods from
// the PXE server image) and changes nothing but what those pods do (the VLAN probe's throwaway
// bridge). Every read is bounded by the settings' timeouts (Timeouts.NodeProbe). The suite's
// framework/e2e.Setup runs it first and refuses to start on a failed required check;
// ci/preflight runs it alone (`make preflight`).
package preflight
