package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// BridgeByPolicy has a NodeNetworkConfigurationPolicy of its own (<namespace>-bridge-<bridge>-
// <random>, labelled as the suite's namespaces are, with owner) make Linux bridge on every
// node, port its one port ("" for none), and waits until every node's enactment succeeded
// (Timeouts.NodeNetwork per wait). It returns the Bridge also on error once its policy may
// exist: its Remove undoes it, and WaitRestored checks the nodes' interfaces afterwards.
func (e *Env) BridgeByPolicy(ctx context.Context, bridge, port, owner string) (*nmstate.Bridge, error) {
	if e.NNCPReason != "" {
		return nil, fmt.Errorf("bridge %s by policy: %s", bridge, e.NNCPReason)
	}
	if err := network.ValidateBridgeName(bridge); err != nil {
		return nil, fmt.Errorf("bridge %s by policy: %w", bridge, err)
	}
	policy := fmt.Sprintf("%s-bridge-%s-%s", e.Config.Namespace, labelValue(bridge), strings.ToLower(rand.Text()[:5]))
	b, err := e.NMState.CreateBridge(ctx, nmstate.BridgeConfig{
		Bridge: bridge, Policy: policy, Port: port, Nodes: e.Nodes,
		Labels: map[string]string{ownerLabel: owner}, Timeout: e.Config.Timeouts.NodeNetwork,
	})
	if err != nil {
		return b, err
	}
	return b, b.WaitAvailable(ctx)
}

// CreateBridge makes the run's bridge (Config.Bridge) by policy when settings say
// bridge.create: nncp (BridgeByPolicy, port-less), and checks through the node probes that
// every node has it; Finish removes it. Otherwise the bridge is the cluster owner's, and it
// does nothing. Call it once per run, before the specs (on the first of parallel processes).
func (e *Env) CreateBridge(ctx context.Context) error {
	if e.Config.BridgeCreate != settings.BridgeByNNCP {
		return nil
	}
	b, err := e.BridgeByPolicy(ctx, e.Config.Bridge, "", "bridge")
	if b != nil {
		e.bridge = b
	}
	if err != nil {
		return fmt.Errorf("the run's bridge (bridge.create: %s): %w", settings.BridgeByNNCP, err)
	}
	var errs []error
	for _, node := range e.Nodes {
		ok, err := network.BridgeExists(ctx, e.Node, node, e.Config.Bridge)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			errs = append(errs, fmt.Errorf("bridge %q absent on node %s although %s %s is Available", e.Config.Bridge, node, nmstate.PolicyKind, b.Config.Policy))
		}
	}
	return errors.Join(errs...)
}

// removeBridge removes the run's bridge, if CreateBridge made it, and waits until every node
// reports the interfaces it had before.
func (e *Env) removeBridge(ctx context.Context) error {
	if e.bridge == nil {
		return nil
	}
	if err := e.bridge.Remove(ctx); err != nil {
		return fmt.Errorf("the run's bridge: %w", err)
	}
	if err := e.bridge.WaitRestored(ctx); err != nil {
		return fmt.Errorf("the run's bridge: %w", err)
	}
	e.bridge = nil
	return nil
}
