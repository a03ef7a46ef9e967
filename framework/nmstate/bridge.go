package nmstate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// BridgeConfig says which Linux bridge CreateBridge has a policy make.
type BridgeConfig struct {
	// Bridge is the bridge's name on the nodes; Policy the policy's name.
	Bridge, Policy string
	// Port is the bridge's one port (SpareLink finds one); empty makes it port-less.
	Port string
	// Nodes are the nodes that must enact the policy, and whose interfaces are compared.
	Nodes []string
	// Labels label the policy.
	Labels map[string]string
	// Timeout bounds each wait: the policy Available, its removal, the interfaces restored.
	Timeout time.Duration
}

// Bridge is a Linux bridge that a NodeNetworkConfigurationPolicy made on the nodes, with what
// the nodes had before; Remove undoes it.
type Bridge struct {
	Config BridgeConfig
	// Before holds each node's interface names (sorted) before the policy was applied.
	Before map[string][]string
	// Versions says which nmstate and NetworkManager the handler reported (Versions).
	Versions string

	c      *Client
	policy *unstructured.Unstructured
}

// CreateBridge records each node's interfaces, then applies a policy for the Linux bridge of
// cfg (LinuxBridge: STP off, no address, cfg.Port its port if set). It does not wait for the
// policy: WaitAvailable does. It returns the Bridge also on error once the policy may exist,
// so that the caller can Remove it.
func (c *Client) CreateBridge(ctx context.Context, cfg BridgeConfig) (*Bridge, error) {
	states, err := c.NodeStates(ctx, cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("record the nodes' interfaces before bridge %s: %w", cfg.Bridge, err)
	}
	b := &Bridge{Config: cfg, Before: map[string][]string{}, Versions: Versions(states), c: c}
	for _, s := range states {
		b.Before[s.Node] = s.Names()
	}
	var ports []string
	if cfg.Port != "" {
		ports = append(ports, cfg.Port)
	}
	var opts []PolicyOption
	for k, v := range cfg.Labels {
		opts = append(opts, WithLabel(k, v))
	}
	b.policy = Policy(cfg.Policy, []Interface{LinuxBridge(cfg.Bridge, ports...)}, opts...)
	if _, err := c.Apply(ctx, b.policy); err != nil {
		return b, fmt.Errorf("create bridge %s: %w", cfg.Bridge, err)
	}
	return b, nil
}

// WaitAvailable waits, up to Config.Timeout, until the policy is Available and every node's
// enactment succeeded (Client.WaitAvailable).
func (b *Bridge) WaitAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.Config.Timeout)
	defer cancel()
	if err := b.c.WaitAvailable(ctx, b.Config.Policy, b.Config.Nodes); err != nil {
		return fmt.Errorf("bridge %s by %s %s (within %s): %w", b.Config.Bridge, PolicyKind, b.Config.Policy, b.Config.Timeout, err)
	}
	return nil
}

// Remove applies the policy again with the bridge absent, waits until that is Available on
// every node, and deletes the policy. Each step is bounded by Config.Timeout and runs even
// when ctx is cancelled (an interrupted run must not leave the bridge). A policy that is
// already gone, or was never created, leaves nothing to do.
func (b *Bridge) Remove(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	name := b.Config.Policy
	if _, err := b.c.dyn.Resource(PolicyResource).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	apply, cancel := context.WithTimeout(ctx, b.Config.Timeout)
	defer cancel()
	if _, err := b.c.Apply(apply, Absent(b.policy)); err != nil {
		return fmt.Errorf("remove bridge %s: %w", b.Config.Bridge, err)
	}
	if err := b.c.WaitAvailable(apply, name, b.Config.Nodes); err != nil {
		return fmt.Errorf("remove bridge %s: the policy with state %s (within %s): %w", b.Config.Bridge, StateAbsent, b.Config.Timeout, err)
	}
	del, cancel := context.WithTimeout(ctx, b.Config.Timeout)
	defer cancel()
	if err := b.c.Delete(del, name); err != nil {
		return fmt.Errorf("remove bridge %s: %w", b.Config.Bridge, err)
	}
	return nil
}

// WaitRestored waits, up to Config.Timeout, until every node reports the interfaces it had
// before the policy (Before): the handler refreshes NodeNetworkState after a change, not at
// once. Its error names each node's extra and missing interfaces.
func (b *Bridge) WaitRestored(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.Config.Timeout)
	defer cancel()
	for {
		states, err := b.c.NodeStates(ctx, b.Config.Nodes)
		if err != nil {
			return fmt.Errorf("after bridge %s: %w", b.Config.Bridge, err)
		}
		var diffs []string
		for _, s := range states {
			if d := diff(b.Before[s.Node], s.Names()); d != "" {
				diffs = append(diffs, fmt.Sprintf("node %s %s", s.Node, d))
			}
		}
		if len(diffs) == 0 {
			return nil
		}
		if err := b.c.sleep(ctx); err != nil {
			return fmt.Errorf("interfaces not as before bridge %s within %s: %s", b.Config.Bridge, b.Config.Timeout, strings.Join(diffs, "; "))
		}
	}
}

// diff says what now has that before had not, and the reverse; "" when they are equal.
func diff(before, now []string) string {
	var extra, missing []string
	for _, n := range now {
		if !slices.Contains(before, n) {
			extra = append(extra, n)
		}
	}
	for _, n := range before {
		if !slices.Contains(now, n) {
			missing = append(missing, n)
		}
	}
	var s []string
	if len(extra) > 0 {
		s = append(s, fmt.Sprintf("has %s, which it had not before", strings.Join(extra, ", ")))
	}
	if len(missing) > 0 {
		s = append(s, fmt.Sprintf("lacks %s, which it had before", strings.Join(missing, ", ")))
	}
	return strings.Join(s, " and ")
}
