package cluster

import (
	"context"
	"fmt"
	"slices"

	kindcluster "sigs.k8s.io/kind/pkg/cluster"
)

// DeleteKind deletes the kind cluster called name, if one exists on this host, and its entries
// in kubeconfig, and reports whether it deleted one. It serves a process other than the one that
// created the cluster (make cluster-down); within one process, use the handle's Delete.
func DeleteKind(ctx context.Context, name, kubeconfig string) (bool, error) {
	if err := validName(name); err != nil {
		return false, fmt.Errorf("delete kind cluster: %w", err)
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	p := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	names, err := p.List()
	if err != nil {
		return false, fmt.Errorf("list kind clusters: %w", withKindOutput(err))
	}
	if !slices.Contains(names, name) {
		return false, nil
	}
	if err := p.Delete(name, kubeconfig); err != nil {
		return false, fmt.Errorf("delete kind cluster %s: %w", name, withKindOutput(err))
	}
	return true, nil
}

// CreatedNetwork names the Docker network CreateKind made for this cluster, or "" when the
// network existed before, so a later process can remove it with RemoveNetworkIfUnused.
func (c *Cluster) CreatedNetwork() string { return c.network }

// RemoveNetworkIfUnused removes a Docker network unless containers still use it.
func RemoveNetworkIfUnused(ctx context.Context, name string) error {
	return removeNetworkIfUnused(ctx, name)
}
