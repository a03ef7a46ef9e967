// Package network builds the cluster network's images and the PXE server's, with no registry:
//
//   - pxec.local/multus:v4.2.2: the Multus thin plugin, passthru and Multus's installer, built
//     from gopkg.in/k8snetworkplumbingwg/multus-cni.v4 and laid out as upstream's thin image
//     (/install_multus, /usr/src/multus-cni/bin), so that either serves Multus's DaemonSet;
//   - pxec.local/cni-plugins:v1.7.1: bridge, static, tuning and host-local from
//     github.com/containernetworking/plugins, and pxec-cni-setup (fixtures/cni-setup), which copies them
//     onto nodes that lack them, and in Multus's DaemonSet installs the plugin on each node
//     and writes Multus's config and kubeconfig;
//   - pxec.local/pxe-server:dev: the PXE server of fixtures/pxe-server on busybox-static (for
//     tar, so a payload can be streamed into the pod, and for ip, to look at its links) with
//     Debian's iPXE boot files in /usr/lib/ipxe. The guest payload is not in the image: it is
//     made per run and handed to the pod at run time.
//
// BuildSonobuoy (the builder's sonobuoy target, built only when named) makes the Sonobuoy
// plugin's images on the same recipe:
//
//   - pxec.local/pxe-conformance-sonobuoy:dev: the compiled suite (go test -c -tags e2e
//     ./suites/pxe), its entrypoint (fixtures/sonobuoy/entrypoint) and the guest payload seeded
//     into PXEC_CACHE, where bootimage.Build finds it without apt;
//   - pxec.local/sonobuoy:v0.57.3: Sonobuoy's one binary, at /sonobuoy, built from its own
//     module as its go.mod pins it (k8s.io v0.27, where ours is v0.34).
//
// Binaries are static (CGO_ENABLED=0) and every image is a root directory imported with
// docker import, labelled with the hash of its inputs; a rebuild happens only when a version,
// a source file of ours, a Debian package or the Go toolchain changed.
package network
