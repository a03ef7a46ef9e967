package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"kubevirt.io/client-go/kubecli"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/preflight"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/pxepod"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// Env is one run's connection to the cluster and what every spec shares.
type Env struct {
	// Config is the run's configuration, timeouts already scaled for emulation.
	Config settings.Config
	// Cluster says which cluster the run reached, for messages: the kubeconfig's path, or
	// "in-cluster as <service account>".
	Cluster string
	REST    *rest.Config
	Kube    kubernetes.Interface
	Virt    kubecli.KubevirtClient
	NADs    nadclient.Interface
	// Nodes are the schedulable nodes' names.
	Nodes []string
	// Node runs read-only commands on nodes: a short-lived host-network pod in a namespace of
	// the suite's own, on every cluster (the lab's too), so the path a lab run exercises is the
	// one a vendor's cluster gets. Its pods see the nodes' CNI plugin directory, read-only.
	Node nodeexec.Runner
	// NodeHost runs the nodes' own programs (nodeexec.WithNodeMountNamespace, a privileged pod
	// in the node's PID and mount namespaces): what reads a node's iptables rules when a
	// guest's DHCP went unheard. Only fault specs (Config.FaultInjection) change a node with it.
	NodeHost nodeexec.Runner
	// KubeVirtVersion is the running KubeVirt's version.
	KubeVirtVersion string
	// Emulation says KubeVirt emulates the CPU (useEmulation), which scales the timeouts.
	Emulation bool
	// VLANReason is why VLAN specs skip; empty when the nodes carry VLANs.
	VLANReason string
	// IsolationReason is why the isolation spec skips; empty when Config.IsolationBridge exists.
	IsolationReason string
	// NMState drives kubernetes-nmstate; NNCPReason is why specs that need it skip (empty
	// when the cluster serves NodeNetworkConfigurationPolicy).
	NMState    *nmstate.Client
	NNCPReason string
	// Payload is the guest kernel and initramfs the PXE server hands out.
	Payload *bootimage.Payload
	// ServerPayload is Payload with iPXE's loaders, packed once for every PXE server pod.
	ServerPayload *pxepod.Payload
	// Keys log in to guests over SSH; Password on their consoles.
	Keys     *guestssh.KeyPair
	Password string

	runnerNS string // namespace of the pod runner, deleted by Close

	bridge *nmstate.Bridge // the run's bridge, when CreateBridge made it; Finish removes it

	lane, lanes int // this process's lane on the PXE network, of how many (SetLane)

	mu       sync.Mutex
	created  []string // namespaces this Env created; the leftover check counts these alone
	deleting []string // spec namespaces whose deletion started; Finish waits for them
}

// Setup validates cfg, connects to its cluster and runs the preflight checks (Preflight),
// writing one line per check to log; it refuses to start on a failed required check, with an
// error listing every failed line. It then builds the guest payload and the guest credentials.
// It reaches nodes only through the API, as on any vendor's cluster, and creates nothing but a
// namespace for its node probes (removed by Close, or by Finish).
func Setup(ctx context.Context, cfg settings.Config, log io.Writer) (env *Env, err error) {
	if log == nil {
		log = io.Discard
	}
	e, report, err := Preflight(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := report.Write(log); err != nil {
		return nil, err
	}
	if err := report.Err(); err != nil {
		return nil, err
	}

	// The payload and the guest credentials.
	start := time.Now()
	e.Payload, err = bootimage.Build(ctx, bootimage.Config{Logf: func(f string, a ...any) { fmt.Fprintf(log, f+"\n", a...) }})
	if err != nil {
		return nil, fmt.Errorf("preflight: build the guest payload: %w", err)
	}
	p := e.Payload
	if e.ServerPayload, err = pxepod.NewPayload(map[string]string{
		bootimage.KernelFile: p.Kernel, bootimage.InitrdFile: p.Initrd,
		pxe.BIOSLoader: p.Undionly, pxe.EFILoader: p.IPXEEFI,
	}); err != nil {
		return nil, fmt.Errorf("preflight: pack the guest payload: %w", err)
	}
	fmt.Fprintf(log, "e2e: guest payload %s (kernel %s, %d bytes packed) ready in %s\n", p.Dir, p.Manifest.KernelRelease, e.ServerPayload.Size(), time.Since(start).Round(time.Millisecond))
	if e.Keys, err = guestssh.NewKeyPair(); err != nil {
		return nil, err
	}
	e.Password = rand.Text()[:16]
	return e, nil
}

// Resolve is cfg as a run uses it: the kubeconfig from KUBECONFIG when cfg names none, and
// validated. With no kubeconfig at all, the run must be inside a pod with a service account
// token (cluster.InClusterConfig): the in-cluster run of the Sonobuoy plugin. Its error is always
// the configuration's (a command exits 2 on it) and names both ways it tried.
func Resolve(cfg settings.Config) (settings.Config, error) {
	if cfg.Kubeconfig == "" {
		cfg.Kubeconfig = os.Getenv("KUBECONFIG")
	}
	if cfg.Kubeconfig == "" {
		if _, err := cluster.InClusterConfig(); err != nil {
			return cfg, fmt.Errorf("preflight: no cluster: no kubeconfig (--pxec.kubeconfig, PXEC_KUBECONFIG and KUBECONFIG are unset), and no in-cluster service account (%v); set a kubeconfig, run the suite in a pod, or run `make e2e`, which creates a kind cluster", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("preflight: %w", err)
	}
	return cfg, nil
}

// Preflight resolves cfg (Resolve), connects to its cluster, finds its Ready, schedulable
// nodes and runs every check of framework/preflight against it from a namespace of its own
// (<namespace>-preflight-<random>) for the node probes. It returns the Env, whose Close
// removes that namespace, with the checks' report; an error means the checks could not run
// at all (bad settings, no cluster, no node), and then nothing is left behind. A failed check
// is no error: the report says so, and the caller decides (Setup refuses to start).
func Preflight(ctx context.Context, cfg settings.Config) (env *Env, report preflight.Report, err error) {
	if cfg, err = Resolve(cfg); err != nil {
		return nil, report, err
	}
	var c *cluster.Cluster
	if cfg.Kubeconfig != "" {
		c, err = cluster.Existing(ctx, cfg.Kubeconfig)
	} else {
		c, err = cluster.InCluster(ctx)
	}
	if err != nil {
		return nil, report, fmt.Errorf("preflight: %w", err)
	}
	e := &Env{Config: cfg, REST: c.REST, Cluster: cfg.Kubeconfig}
	if e.Cluster == "" {
		e.Cluster = "in-cluster as " + c.Name
	}
	defer func() {
		if err != nil {
			e.Close(context.WithoutCancel(ctx))
		}
	}()
	if e.Kube, err = kubernetes.NewForConfig(c.REST); err != nil {
		return nil, report, err
	}
	if e.Virt, err = kubecli.GetKubevirtClientFromRESTConfig(c.REST); err != nil {
		return nil, report, err
	}
	if e.NADs, err = nadclient.NewForConfig(c.REST); err != nil {
		return nil, report, err
	}
	dyn, err := dynamic.NewForConfig(c.REST)
	if err != nil {
		return nil, report, err
	}
	e.NMState = nmstate.NewClient(dyn, nmstate.DefaultPoll)

	nodes, err := e.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, report, fmt.Errorf("preflight: list nodes of %s: %w", e.Cluster, err)
	}
	for _, n := range nodes.Items {
		if !n.Spec.Unschedulable && nodeReady(n) {
			e.Nodes = append(e.Nodes, n.Name)
		}
	}
	if len(e.Nodes) == 0 {
		return nil, report, fmt.Errorf("preflight: cluster %s has no Ready, schedulable node", e.Cluster)
	}

	// Node probes: pods on the nodes' host network, in a namespace of our own, from the PXE
	// server image. The CNI check alone mounts the nodes' plugin directory (read-only); the
	// VLAN probe makes a throwaway bridge, so it alone gets NET_ADMIN.
	ns, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: cfg.NamespaceGenerateName() + "preflight-", Labels: namespaceLabels("preflight")}}, metav1.CreateOptions{})
	if err != nil {
		return nil, report, fmt.Errorf("preflight: create the node probe namespace: %w", err)
	}
	e.runnerNS = ns.Name
	e.remember(ns.Name)
	probes := preflight.Cluster{Kube: e.Kube, KubeVirt: e.Virt.GeneratedKubeVirtClient().KubevirtV1(), NADs: e.NADs, Nodes: e.Nodes, NMState: e.NMState}
	if probes.Node, err = e.podRunner(); err != nil {
		return nil, report, err
	}
	if probes.CNINode, err = e.podRunner(nodeexec.WithHostPathReadOnly(preflight.CNIBinDir)); err != nil {
		return nil, report, err
	}
	if probes.LinkNode, err = e.podRunner(nodeexec.WithCapabilities("NET_ADMIN")); err != nil {
		return nil, report, err
	}
	if report, err = preflight.Run(ctx, probes, cfg); err != nil {
		return nil, report, err
	}
	e.KubeVirtVersion, e.Emulation = report.KubeVirtVersion, report.Emulation
	e.IsolationReason = report.Unavailable(preflight.IsolationBridge)
	e.VLANReason = report.Unavailable(preflight.VLAN)
	e.NNCPReason = report.Unavailable(preflight.NMState)
	if e.Emulation {
		e.Config = e.Config.ForEmulation()
	}
	// The specs' node runner, bounded by the timeouts as scaled; it sees the nodes' CNI
	// plugins (read-only) so that the results bundle can list them.
	if e.Node, err = e.podRunner(nodeexec.WithHostPathReadOnly(preflight.CNIBinDir)); err != nil {
		return nil, report, err
	}
	if e.NodeHost, err = e.podRunner(nodeexec.WithNodeMountNamespace()); err != nil {
		return nil, report, err
	}
	return e, report, nil
}

// WritableRunner runs commands on nodes in pods that mount the node's directory dir writable,
// for the fault specs alone (settings.FaultInjection); each command is bounded by
// Timeouts.NodeProbe.
func (e *Env) WritableRunner(dir string) (nodeexec.Runner, error) {
	if !e.Config.FaultInjection {
		return nil, fmt.Errorf("a node runner that writes %s: faultInjection is off", dir)
	}
	return e.podRunner(nodeexec.WithHostPathWritable(dir))
}

// podRunner runs node probes in the Env's namespace from the PXE server image, each bounded by
// Timeouts.NodeProbe.
func (e *Env) podRunner(opts ...nodeexec.PodRunnerOption) (*nodeexec.PodRunner, error) {
	opts = append([]nodeexec.PodRunnerOption{nodeexec.WithPodTimeout(e.Config.Timeouts.NodeProbe)}, opts...)
	return nodeexec.NewPodRunner(e.REST, e.runnerNS, e.Config.Images.PXEServer, opts...)
}

// ownerLabel marks every namespace the suite creates, with the spec's name as value.
const ownerLabel = "pxe-conformance.io/spec"

// namespaceLabels are the labels of a namespace the suite creates for owner (a spec, or
// "preflight"). Its pods use the host network (node probes) or run privileged (the PXE server),
// so the namespace asks Pod Security Admission for the privileged level: a cluster that enforces
// baseline or restricted by default would refuse them otherwise.
func namespaceLabels(owner string) map[string]string {
	return map[string]string{
		ownerLabel:                           owner,
		"pod-security.kubernetes.io/enforce": "privileged",
		"pod-security.kubernetes.io/warn":    "privileged",
	}
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Finish ends a run: it waits for the spec namespaces whose deletion Spec.Delete started,
// removes the run's bridge when CreateBridge made it (leaving the nodes' interfaces as they
// were), removes what Setup created and then, unless checkLeftovers is false, fails when any namespace the
// suite created is still there. Removal comes first so that the
// check counts only what specs left behind (it once counted Setup's own probe namespace,
// whose removal Ginkgo ran after the check, and failed every run on a vendor's cluster).
func (e *Env) Finish(ctx context.Context, checkLeftovers bool) error {
	e.mu.Lock()
	deleting := e.deleting
	e.deleting = nil
	e.mu.Unlock()
	var gone []error
	for _, ns := range deleting {
		gone = append(gone, waitNamespaceGone(ctx, e.Kube, ns, e.Config.Timeouts.Cleanup))
	}
	nsErr := errors.Join(gone...)
	if nsErr != nil {
		nsErr = fmt.Errorf("spec namespaces: %w", nsErr)
	}
	// The run's bridge goes even when a namespace lingers: its policy is cluster-wide.
	if err := errors.Join(nsErr, e.removeBridge(ctx)); err != nil {
		return err
	}
	if err := e.Close(ctx); err != nil {
		return fmt.Errorf("remove the node probes' namespace: %w", err)
	}
	if !checkLeftovers {
		return nil
	}
	left, err := e.LeftoverNamespaces(ctx)
	if err != nil {
		return fmt.Errorf("list the namespaces the suite created: %w", err)
	}
	if len(left) > 0 {
		return fmt.Errorf("namespaces the suite created and did not remove: %q", left)
	}
	return nil
}

// Close removes what Setup created.
func (e *Env) Close(ctx context.Context) error {
	if e.runnerNS == "" || e.Kube == nil {
		return nil
	}
	err := deleteNamespace(ctx, e.Kube, e.runnerNS, e.Config.Timeouts.Cleanup)
	e.runnerNS = ""
	return err
}

// deleteNamespace deletes ns and waits until it is gone.
// It runs to its own timeout even when ctx is cancelled (an interrupted run must not leak the
// namespace); ctx carries only values.
func deleteNamespace(ctx context.Context, kube kubernetes.Interface, ns string, timeout time.Duration) error {
	if err := startNamespaceDeletion(ctx, kube, ns); err != nil {
		return err
	}
	return waitNamespaceGone(ctx, kube, ns, timeout)
}

// startNamespaceDeletion asks the API server to delete ns and returns at once.
func startNamespaceDeletion(ctx context.Context, kube kubernetes.Interface, ns string) error {
	err := kube.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete namespace %s: %w", ns, err)
	}
	return nil
}

// waitNamespaceGone waits until ns is gone, to its own timeout even when ctx is cancelled.
func waitNamespaceGone(ctx context.Context, kube kubernetes.Interface, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	for {
		got, err := kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			phase := ""
			if got != nil {
				phase = string(got.Status.Phase)
				for _, c := range got.Status.Conditions {
					if c.Status == corev1.ConditionTrue {
						phase += "; " + c.Message
					}
				}
			}
			return fmt.Errorf("namespace %s not gone within %s (%s)", ns, timeout, strings.TrimPrefix(phase, "; "))
		case <-time.After(namespacePoll):
		}
	}
}

// namespacePoll paces waitNamespaceGone; its bound is Timeouts.Cleanup.
const namespacePoll = 500 * time.Millisecond

// deleteLater starts the deletion of a spec's namespace and remembers it for Finish, which
// waits for all of them once: KubeVirt's finalizers take seconds per namespace, and no spec
// should sit idle through them.
func (e *Env) deleteLater(ctx context.Context, ns string) error {
	if err := startNamespaceDeletion(ctx, e.Kube, ns); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deleting = append(e.deleting, ns)
	return nil
}

// remember records a namespace this Env created, for the leftover check.
func (e *Env) remember(ns string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.created = append(e.created, ns)
}

// LeftoverNamespaces lists the namespaces this Env created that still exist, for a final check
// that a run leaves nothing behind. Other runs' namespaces, and other parallel processes' of
// this run, are theirs to check.
func (e *Env) LeftoverNamespaces(ctx context.Context) ([]string, error) {
	list, err := e.Kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: ownerLabel})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, n := range list.Items {
		if slices.Contains(e.created, n.Name) {
			names = append(names, n.Name)
		}
	}
	return names, nil
}
