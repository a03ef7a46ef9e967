package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// Cluster is a Kubernetes cluster the suite can reach.
type Cluster struct {
	// Name is the kind cluster name, or the kubeconfig's current context for other clusters.
	Name string
	// Kubeconfig is the path of a kubeconfig whose current context is this cluster.
	Kubeconfig string
	// REST reaches the API server.
	REST *rest.Config
	// Nodes are the node names (for kind, also the node containers' names).
	Nodes []string

	created        bool                  // CreateKind made it, so Delete may remove it
	tempKubeconfig string                // directory CreateKind made for the kubeconfig
	network        string                // Docker network kind made for this cluster, if it did
	provider       *kindcluster.Provider // nil when the cluster is not a kind cluster on this host
}

// CreateKind creates a kind cluster called name from the offline node image, waits until every
// node and kube-system pod is Ready, and returns it. On error the cluster is already deleted, so
// the returned *Cluster is nil; an existing cluster of the same name is never touched.
func CreateKind(ctx context.Context, name string, opts ...CreateOption) (*Cluster, error) {
	o := defaultCreateOptions()
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("create kind cluster: %w", err)
	}
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
	}
	useKVM, why := false, ""
	if o.kvm != nil {
		useKVM = *o.kvm
		if _, err := os.Stat(kvmDevice); useKVM && err != nil {
			return nil, fmt.Errorf("create kind cluster %s: kvm: true: %w", name, err)
		}
	} else {
		v, err := kvm.Probe(ctx)
		if err != nil {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
		useKVM, why = v.Usable, v.Reason
	}
	logger := newKindLogger(o.log)
	if why != "" {
		logger.V(0).Infof("KVM for guests: %v (%s)", useKVM, why)
	}
	provider := kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(logger))
	existing, err := provider.List()
	if err != nil {
		return nil, fmt.Errorf("create kind cluster %s: list clusters: %w", name, err)
	}
	for _, e := range existing {
		if e == name {
			return nil, fmt.Errorf("create kind cluster %s: a kind cluster of that name exists already", name)
		}
	}

	c := &Cluster{Name: name, Kubeconfig: o.kubeconfig, created: true, provider: provider}
	// kind makes its Docker network on first use and never removes it: when this creation is
	// the first use, the network is ours to remove in Delete.
	if network := kindNetwork(); !dockerNetworkExists(ctx, network) {
		c.network = network
	}
	if c.Kubeconfig == "" {
		dir, err := os.MkdirTemp("", "pxec-kubeconfig-")
		if err != nil {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
		c.tempKubeconfig, c.Kubeconfig = dir, filepath.Join(dir, "kubeconfig")
	}
	if err := c.create(ctx, o, useKVM); err != nil {
		// Delete gets its own context: the caller's may be what ended the creation.
		if derr := c.Delete(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
	}
	return c, nil
}

// create runs kind's Create, which takes no context: a cancelled ctx deletes the half-made
// cluster's containers, which makes Create fail promptly.
func (c *Cluster) create(ctx context.Context, o createOptions, useKVM bool) error {
	done := make(chan error, 1)
	go func() {
		done <- c.provider.Create(c.Name,
			kindcluster.CreateWithV1Alpha4Config(renderConfig(o, useKVM)),
			kindcluster.CreateWithNodeImage(o.nodeImage),
			kindcluster.CreateWithKubeconfigPath(c.Kubeconfig),
			kindcluster.CreateWithDisplayUsage(false),
			kindcluster.CreateWithDisplaySalutation(false),
		)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = c.provider.Delete(c.Name, c.Kubeconfig)
		<-done
		if _, err := removeNodes(c.provider, c.Name, c.Kubeconfig); err != nil {
			return errors.Join(ctx.Err(), fmt.Errorf("remove the half-made kind cluster %s: %w", c.Name, err))
		}
		return ctx.Err()
	}
	if err != nil {
		return withKindOutput(err)
	}
	c.REST, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	if err := c.refreshNodes(); err != nil {
		return err
	}
	if err := c.writeRegistryHosts(ctx, o.registries); err != nil {
		return err
	}
	if err := c.guardServices(ctx, renderConfig(o, useKVM).Networking.ServiceSubnet); err != nil {
		return err
	}
	return waitReady(ctx, c.REST, o.readyTimeout)
}

// Existing reaches the cluster of kubeconfig's current context. When that context is a kind
// cluster on this host ("kind-<name>"), LoadImages and NodeExec work too; Delete never removes it.
func Existing(ctx context.Context, kubeconfig string) (*Cluster, error) {
	raw, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	c := &Cluster{Name: raw.CurrentContext, Kubeconfig: kubeconfig, REST: cfg}
	if kindName, ok := strings.CutPrefix(raw.CurrentContext, "kind-"); ok {
		p := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
		if ns, err := p.ListNodes(kindName); err == nil && len(ns) > 0 {
			c.Name, c.provider = kindName, p
		}
	}
	if c.provider != nil {
		if err := c.refreshNodes(); err != nil {
			return nil, err
		}
		return c, nil
	}
	names, err := nodeNames(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("reach cluster of %s: %w", kubeconfig, err)
	}
	c.Nodes = names
	return c, nil
}

// Delete removes the cluster and the temporary kubeconfig if CreateKind made them; for a cluster
// found with Existing it does nothing.
func (c *Cluster) Delete(ctx context.Context) error {
	if !c.created {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var errs []error
	if _, err := removeNodes(c.provider, c.Name, c.Kubeconfig); err != nil {
		errs = append(errs, fmt.Errorf("delete kind cluster %s: %w", c.Name, err))
	}
	if c.tempKubeconfig != "" {
		if err := os.RemoveAll(c.tempKubeconfig); err != nil {
			errs = append(errs, err)
		}
	}
	if c.network != "" && len(errs) == 0 {
		if err := removeNetworkIfUnused(ctx, c.network); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		c.created = false
	}
	return errors.Join(errs...)
}

// CollectLogs writes kind's diagnostics of every node (journal, containerd and kubelet logs,
// pod logs) under dir.
func (c *Cluster) CollectLogs(ctx context.Context, dir string) error {
	if c.provider == nil {
		return fmt.Errorf("collect logs of %s: not a kind cluster on this host", c.Name)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := c.provider.CollectLogs(c.Name, dir); err != nil {
		return fmt.Errorf("collect logs of %s into %s: %w", c.Name, dir, err)
	}
	return nil
}

func (c *Cluster) refreshNodes() error {
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return fmt.Errorf("list nodes of kind cluster %s: %w", c.Name, err)
	}
	c.Nodes = c.Nodes[:0]
	for _, n := range ns {
		c.Nodes = append(c.Nodes, n.String())
	}
	return nil
}

func (c *Cluster) node(name string) (nodes.Node, error) {
	if c.provider == nil {
		return nil, fmt.Errorf("cluster %s is not a kind cluster on this host", c.Name)
	}
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return nil, fmt.Errorf("list nodes of kind cluster %s: %w", c.Name, err)
	}
	for _, n := range ns {
		if n.String() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("kind cluster %s has no node %q", c.Name, name)
}

// withKindOutput adds what kind's exec errors carry but do not print: a *command.Error with
// the pasteable command line and its output.
func withKindOutput(err error) error {
	var runErr *kindexec.RunError
	if errors.As(err, &runErr) {
		return fmt.Errorf("%w\n%w", err, &command.Error{Command: command.Line(runErr.Command...), Output: string(runErr.Output), Err: runErr.Inner})
	}
	return err
}

// kindNetwork is the Docker network kind puts its nodes on.
func kindNetwork() string {
	if n := os.Getenv("KIND_EXPERIMENTAL_DOCKER_NETWORK"); n != "" {
		return n
	}
	return "kind"
}

func dockerNetworkExists(ctx context.Context, name string) bool {
	_, err := dockerOutput(ctx, "network", "inspect", "--format", "{{.Name}}", name)
	return err == nil
}

// removeNetworkIfUnused removes network unless containers (another cluster's nodes) still use it.
func removeNetworkIfUnused(ctx context.Context, name string) error {
	out, err := dockerOutput(ctx, "network", "inspect", "--format", "{{len .Containers}}", name)
	if err != nil {
		return nil // already gone
	}
	if strings.TrimSpace(string(out)) != "0" {
		return nil
	}
	if _, err := dockerOutput(ctx, "network", "rm", name); err != nil {
		return fmt.Errorf("remove docker network %s: %w", name, err)
	}
	return nil
}
