// Package pxe is the conformance suite proper: Ginkgo v2 specs that follow the documented
// procedure (../shared/seed/pxe-booting-virtual-machines.txt) on a Kubernetes cluster with
// KubeVirt, Multus and the bridge CNI, plus the negative cases a regression gate needs.
//
// The specs build only with the e2e tag (they need a cluster), so `go test ./...` leaves them
// out:
//
//	make e2e                                  # kind cluster built offline, the suite, teardown
//	make certify KUBECONFIG=$HOME/.kube/config # a vendor's cluster; creates only namespaces
//	go run github.com/onsi/ginkgo/v2/ginkgo --tags e2e --dry-run -v ./suites/pxe   # list the specs
//
// Settings come from suites/config (file, PXEC_* variables, --pxec.* flags after -args or --).
// Every run writes junit.xml, report.json, timings.json, environment.json and index.html to the
// artifacts directory and packs them with the spec folders into the results bundle
// (framework/results); a procedure spec saves its boot screen and the PXE server's events in
// $ARTIFACTS/<spec>/, and a failed spec adds its console transcript, VMI and pod YAML and logs,
// events, the PXE server's events and the bridges' state.
package pxe
