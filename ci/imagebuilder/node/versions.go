package node

// Versions of everything the node image is made of, pinned here and nowhere else.
const (
	// KubernetesVersion is the k8s.io/kubernetes module version the node runs.
	KubernetesVersion = "v1.34.4"
	// stagingVersion is the version of k8s.io/<staging module> that matches KubernetesVersion.
	stagingVersion = "v0.34.4"
	// KindVersion is the sigs.k8s.io/kind module whose images/base files the node is made from.
	KindVersion = "v0.33.0"
	// etcdVersion is go.etcd.io/etcd/server/v3; kubeadm v1.34.4 asks for etcd 3.6.5-0.
	etcdVersion = "v3.6.5"
	// coreDNSVersion is github.com/coredns/coredns; kubeadm v1.34.4 asks for v1.12.1.
	coreDNSVersion = "v1.12.1"
	// criToolsVersion is sigs.k8s.io/cri-tools, for crictl.
	criToolsVersion = "v1.34.0"
	// debianSuite is the Debian release of the node and kube-proxy root filesystems.
	debianSuite = "bookworm"
	// recipe changes whenever this package changes how an image is assembled, so cached images
	// made by an older recipe are rebuilt.
	recipe = "node-recipe-1"
)

// kubeBinaries are the Kubernetes commands the node and its control-plane images need.
func kubeBinaries() []string {
	return []string{"kubeadm", "kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}
}

// nodePackages are installed by debootstrap into the node root: what kind's base image installs,
// with Debian's containerd and runc in place of kind's own builds.
func nodePackages() []string {
	return []string{
		"systemd", "dbus", "containerd", "runc", "iptables", "nftables", "iproute2", "conntrack",
		"ethtool", "socat", "kmod", "mount", "util-linux", "libseccomp2", "pigz", "fuse-overlayfs",
		"e2fsprogs", "ca-certificates", "curl", "jq", "procps",
	}
}

// proxyPackages make the kube-proxy image's root: kube-proxy drives iptables or nft.
func proxyPackages() []string { return []string{"iptables", "nftables", "conntrack", "kmod"} }
