package settings

import (
	"context"
	"errors"
	"fmt"
)

// BridgeProbe reports whether the configured bridge exists on node; the suite implements it
// with a command on the node, tests with a fake.
type BridgeProbe func(ctx context.Context, node string) (bool, error)

// CheckBridge is the part of Validate that needs the cluster: it asks probe whether c.Bridge
// exists on each of nodes and refuses a bridge that is absent on any of them. The suite calls
// it in preflight on a cluster where it does not create the bridge itself.
func (c Config) CheckBridge(ctx context.Context, nodes []string, probe BridgeProbe) error {
	if len(nodes) == 0 {
		return fmt.Errorf("check bridge %q: no nodes to look on", c.Bridge)
	}
	var errs []error
	for _, node := range nodes {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("look for bridge %q on node %q: %w", c.Bridge, node, err))
			break
		}
		ok, err := probe(ctx, node)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("look for bridge %q on node %q: %w", c.Bridge, node, err))
		case !ok:
			errs = append(errs, fmt.Errorf("bridge %q: absent on node %q", c.Bridge, node))
		}
	}
	return errors.Join(errs...)
}
