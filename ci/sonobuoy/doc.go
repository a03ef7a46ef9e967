// Package sonobuoy proves the Sonobuoy plugin (fixtures/sonobuoy) on a running lab cluster; it
// holds only tests, with the build tag cluster (`make test-sonobuoy`):
//
//   - TestPluginJobLeavesDoneAndTheBundle runs the plugin's container in a Job exactly as
//     plugin.yaml describes it, with the service account and RBAC of rbac.yaml, beside a
//     stand-in for Sonobuoy's worker that serves the results directory; it reads done and the
//     bundle through the API server's pod proxy, and checks the bundle's files and that the
//     certification specs passed.
//   - TestSonobuoyRunsThePlugin runs Sonobuoy itself (v0.57.3, its image built offline by
//     `go run ./ci/imagebuilder sonobuoy`, its CLI taken from that image): sonobuoy run with the
//     plugin, retrieve, results, delete.
//
// Both need KUBECONFIG naming a kind cluster of this host that runs KubeVirt, Multus and the
// bridge (make cluster), and remove everything they created.
package sonobuoy
