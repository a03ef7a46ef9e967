// Package node builds the kind node image of the offline cluster without any registry: a Debian
// bookworm root filesystem made by debootstrap with kind's own base-image files applied (read
// from the sigs.k8s.io/kind module cache at build time), Kubernetes built from k8s.io/kubernetes,
// crictl, the standard CNI plugins, the capdrop-runc wrapper as containerd's runtime, and every
// control-plane image kubeadm asks for (etcd, coredns, pause, kube-*) built from Go modules and
// preloaded into the node's containerd under the names kubeadm expects.
//
// Every step is cached by its inputs: Go builds by module versions and flags under the cache
// directory, root filesystems by suite and package list, images by an input-hash label.
package node
