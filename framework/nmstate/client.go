package nmstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// Client reads and writes kubernetes-nmstate's resources.
type Client struct {
	dyn  dynamic.Interface
	poll time.Duration
}

// DefaultPoll paces Client's waits; kubernetes-nmstate's handler reports within seconds.
const DefaultPoll = time.Second

// NewClient is a Client on dyn that polls every poll (DefaultPoll when 0).
func NewClient(dyn dynamic.Interface, poll time.Duration) *Client {
	if poll <= 0 {
		poll = DefaultPoll
	}
	return &Client{dyn: dyn, poll: poll}
}

// NotServed is why a cluster without kubernetes-nmstate cannot have a policy.
const NotServed = "the cluster has no kubernetes-nmstate: nmstate.io/v1 NodeNetworkConfigurationPolicy is not served"

// Served reports whether API discovery lists NodeNetworkConfigurationPolicy in nmstate.io/v1.
// A group version the server does not know is no error: it is not served.
func Served(disc discovery.DiscoveryInterface) (bool, error) {
	gv := PolicyResource.GroupVersion().String()
	list, err := disc.ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s from API discovery: %w", gv, err)
	}
	for _, r := range list.APIResources {
		if r.Name == PolicyResource.Resource {
			return true, nil
		}
	}
	return false, nil
}

// Apply creates policy p, or replaces the spec of the policy of that name (keeping its
// metadata), and returns the policy as the API server stored it.
func (c *Client) Apply(ctx context.Context, p *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	policies := c.dyn.Resource(PolicyResource)
	var out *unstructured.Unstructured
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := policies.Get(ctx, p.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out, err = policies.Create(ctx, p, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur = cur.DeepCopy()
		cur.Object["spec"] = p.DeepCopy().Object["spec"]
		out, err = policies.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("apply %s %s: %w", PolicyKind, p.GetName(), err)
	}
	return out, nil
}

// Delete deletes the policy name and waits until it is gone (kubernetes-nmstate deletes its
// enactments with it). A policy already gone is no error.
func (c *Client) Delete(ctx context.Context, name string) error {
	policies := c.dyn.Resource(PolicyResource)
	if err := policies.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", PolicyKind, name, err)
	}
	for {
		_, err := policies.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err := c.sleep(ctx); err != nil {
			return fmt.Errorf("%s %s still there after its deletion: %w", PolicyKind, name, err)
		}
	}
}

// Condition is one entry of a kubernetes-nmstate status's conditions.
type Condition struct {
	Type, Status, Reason, Message string
}

// Condition types of policies and enactments that the waits read.
const (
	Available   = "Available"
	Degraded    = "Degraded"    // a policy's: some node failed
	Failing     = "Failing"     // an enactment's: its node failed
	Aborted     = "Aborted"     // an enactment's: not tried, because another node failed
	Progressing = "Progressing" // both: the handler is applying the desired state
)

// Enactment is a policy's outcome on one node (a NodeNetworkConfigurationEnactment).
type Enactment struct {
	Name, Node string
	// PolicyGeneration is the policy's generation that the conditions are about.
	PolicyGeneration int64
	Conditions       []Condition
}

// Labels kubernetes-nmstate puts on each enactment.
const (
	enactmentPolicyLabel = "nmstate.io/policy"
	enactmentNodeLabel   = "nmstate.io/node"
)

// Enactments lists the enactments of policy, one per node the policy matched.
func (c *Client) Enactments(ctx context.Context, policy string) ([]Enactment, error) {
	list, err := c.dyn.Resource(EnactmentResource).List(ctx, metav1.ListOptions{LabelSelector: enactmentPolicyLabel + "=" + policy})
	if err != nil {
		return nil, fmt.Errorf("list the enactments of %s %s: %w", PolicyKind, policy, err)
	}
	out := make([]Enactment, 0, len(list.Items))
	for _, u := range list.Items {
		e := Enactment{Name: u.GetName(), Node: u.GetLabels()[enactmentNodeLabel], Conditions: conditions(u.Object)}
		e.PolicyGeneration, _, _ = unstructured.NestedInt64(u.Object, "status", "policyGeneration")
		if e.Node == "" {
			// Named <node>.<policy> by kubernetes-nmstate.
			e.Node = strings.TrimSuffix(e.Name, "."+policy)
		}
		out = append(out, e)
	}
	return out, nil
}

// conditions reads status.conditions of an unstructured object.
func conditions(obj map[string]any) []Condition {
	raw, _, _ := unstructured.NestedSlice(obj, "status", "conditions")
	var out []Condition
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		out = append(out, Condition{Type: str("type"), Status: str("status"), Reason: str("reason"), Message: str("message")})
	}
	return out
}

// isTrue returns the condition of type t when its status is True.
func isTrue(conds []Condition, t string) (Condition, bool) {
	for _, c := range conds {
		if c.Type == t && c.Status == "True" {
			return c, true
		}
	}
	return Condition{}, false
}

// WaitAvailable waits until policy name is Available and, on each of nodes, its enactment
// for the policy's current generation is Available. It fails at once when the policy is
// Degraded or an enactment of the current generation is Failing or Aborted, with the
// enactment's message; when ctx ends first, its error says what was still awaited.
func (c *Client) WaitAvailable(ctx context.Context, name string, nodes []string) error {
	var waiting string
	for {
		done, why, err := c.available(ctx, name, nodes)
		switch {
		case err != nil:
			return err
		case done:
			return nil
		}
		waiting = why
		if err := c.sleep(ctx); err != nil {
			return fmt.Errorf("%s %s not Available: %s: %w", PolicyKind, name, waiting, err)
		}
	}
}

// available reads the policy and its enactments once: done, or what is still awaited, or an
// error for a failure (or a read that failed).
func (c *Client) available(ctx context.Context, name string, nodes []string) (done bool, waiting string, err error) {
	p, err := c.dyn.Resource(PolicyResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, "", fmt.Errorf("read %s %s: %w", PolicyKind, name, err)
	}
	gen := p.GetGeneration()
	ens, err := c.Enactments(ctx, name)
	if err != nil {
		return false, "", err
	}
	// Failures first: an enactment's message says what nmstate refused on which node.
	var failed []string
	for _, e := range ens {
		if gen != 0 && e.PolicyGeneration != gen {
			continue // about an earlier desired state
		}
		for _, t := range []string{Failing, Aborted} {
			if cond, ok := isTrue(e.Conditions, t); ok {
				failed = append(failed, fmt.Sprintf("enactment %s (node %s) is %s (%s): %s", e.Name, e.Node, t, cond.Reason, cond.Message))
			}
		}
	}
	if cond, ok := isTrue(conditions(p.Object), Degraded); ok {
		failed = append([]string{fmt.Sprintf("%s %s is Degraded (%s): %s", PolicyKind, name, cond.Reason, cond.Message)}, failed...)
	}
	if len(failed) > 0 {
		return false, "", errors.New(strings.Join(failed, "; "))
	}

	var pending []string
	if _, ok := isTrue(conditions(p.Object), Available); !ok {
		pending = append(pending, fmt.Sprintf("policy conditions %s", summary(conditions(p.Object))))
	}
	for _, node := range nodes {
		i := slices.IndexFunc(ens, func(e Enactment) bool { return e.Node == node })
		switch {
		case i < 0:
			pending = append(pending, fmt.Sprintf("no enactment on node %s (does kubernetes-nmstate's handler run there?)", node))
		case gen != 0 && ens[i].PolicyGeneration != gen:
			pending = append(pending, fmt.Sprintf("enactment %s is about policy generation %d, the policy is at %d", ens[i].Name, ens[i].PolicyGeneration, gen))
		default:
			if _, ok := isTrue(ens[i].Conditions, Available); !ok {
				pending = append(pending, fmt.Sprintf("enactment %s conditions %s", ens[i].Name, summary(ens[i].Conditions)))
			}
		}
	}
	if len(pending) > 0 {
		return false, strings.Join(pending, "; "), nil
	}
	return true, "", nil
}

// summary lists the conditions that are True, or says there are none.
func summary(conds []Condition) string {
	var s []string
	for _, c := range conds {
		if c.Status == "True" {
			s = append(s, c.Type+"="+c.Reason)
		}
	}
	if len(s) == 0 {
		return "[none True yet]"
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (c *Client) sleep(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(c.poll):
		return nil
	}
}
