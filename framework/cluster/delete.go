package cluster

import (
	"context"
	"fmt"
	"time"

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
	deleted, err := removeNodes(p, name, kubeconfig)
	if err != nil {
		return deleted, fmt.Errorf("delete kind cluster %s: %w", name, err)
	}
	return deleted, nil
}

// How long removeNodes waits for node containers to stop appearing.
const (
	settleQuiet = 3 * time.Second
	settleMax   = time.Minute
)

// removeNodes deletes the cluster's node containers until none has shown for settleQuiet, and
// reports whether there were any. A `docker run` of kind's that Ctrl-C ended can still be
// finishing in the engine: its container appears, in state Created, after a first deletion
// found nothing (seen with make interrupt, which interrupts kind's create).
func removeNodes(p *kindcluster.Provider, name, kubeconfig string) (bool, error) {
	deleted := false
	start, quietSince := time.Now(), time.Now()
	for {
		nodes, err := p.ListNodes(name)
		if err != nil {
			return deleted, fmt.Errorf("list its node containers: %w", withKindOutput(err))
		}
		switch {
		case len(nodes) > 0:
			if err := p.Delete(name, kubeconfig); err != nil {
				return deleted, withKindOutput(err)
			}
			deleted, quietSince = true, time.Now()
		case time.Since(quietSince) >= settleQuiet:
			return deleted, nil
		}
		if time.Since(start) > settleMax {
			return deleted, fmt.Errorf("its node containers kept appearing for %s", settleMax)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// CreatedNetwork names the Docker network CreateKind made for this cluster, or "" when the
// network existed before, so a later process can remove it with RemoveNetworkIfUnused.
func (c *Cluster) CreatedNetwork() string { return c.network }

// RemoveNetworkIfUnused removes a Docker network unless containers still use it.
func RemoveNetworkIfUnused(ctx context.Context, name string) error {
	return removeNetworkIfUnused(ctx, name)
}
