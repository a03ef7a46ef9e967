// Package results turns a finished run into what a vendor hands in: a results bundle,
// $ARTIFACTS/pxe-conformance-<UTC timestamp>.tar.gz, holding the JUnit report, Ginkgo's JSON
// report, the specs' step timings, the run's environment, every spec's artifact folder and
// index.html, one page a person reads in any browser straight from the unpacked tarball.
//
// CollectEnvironment reads the cluster once, every read bounded by the run's nodeProbe timeout:
// versions, nodes, KubeVirt's configuration, Multus, and what the node probes can see of bridges
// and CNI plugins. An item it cannot read holds the error text in its place; nothing it reads
// fails the run. It takes API clients and a node runner, never the guest's password or SSH keys,
// so the environment cannot carry them. NotRead records why a run read no cluster (a dry run, a
// failed setup).
//
// WriteBundle writes the reports and the page into the artifacts directory and packs them with
// the spec folders (SpecDir names them, for the suite and the page alike). The page is built
// with html/template from the report alone: no external asset, styles inline, screenshots as
// data: URIs. Nothing here calls Ginkgo or Gomega; it reads Ginkgo's types.Report.
package results
