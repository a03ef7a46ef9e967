package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kvv1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// The checks' names, as the output and Report.Unavailable spell them.
const (
	KubeVirt        = "kubevirt"
	KVM             = "kvm"
	Multus          = "multus"
	PXEServerImage  = "pxe-server-image"
	CNIPlugins      = "cni-plugins"
	Bridge          = "bridge"
	IsolationBridge = "isolation-bridge"
	BridgeNetfilter = "bridge-netfilter"
	VLAN            = "vlan"
	ScreenshotAPI   = "screenshot-api"
	GuestConsoleLog = "guest-console-log"
)

// Checks lists every check in the order Run runs them: the PXE server image before the other
// node probes, which run from it.
func Checks() []Check {
	return []Check{
		{KubeVirt, true, checkKubeVirt},
		{KVM, true, checkKVM},
		{Multus, true, checkMultus},
		{PXEServerImage, true, checkImage},
		{CNIPlugins, true, checkCNIPlugins},
		{Bridge, true, checkBridge},
		{IsolationBridge, false, checkIsolationBridge},
		{BridgeNetfilter, true, checkNetfilter},
		{VLAN, false, checkVLAN},
		{ScreenshotAPI, false, checkScreenshotAPI},
		{GuestConsoleLog, false, checkGuestConsoleLog},
	}
}

// run is one Run's state: what the checks share.
type run struct {
	Cluster
	cfg settings.Config
	// kv is the KubeVirt resource, or kvErr why there is none.
	kv    *kvv1.KubeVirt
	kvErr error
	// unpullable holds, by node, why the probe image could not be pulled there: the node
	// probes that follow skip those nodes, pointing at the image's check.
	mu         sync.Mutex
	unpullable map[string]error
}

// bounded is ctx bounded by the node probe's timeout, for one API read.
func (r *run) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.Timeouts.NodeProbe)
}

func (r *run) readKubeVirt(ctx context.Context) {
	if r.KubeVirt == nil {
		r.kvErr = errors.New("no KubeVirt client")
		return
	}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	list, err := r.KubeVirt.KubeVirts(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	switch {
	case err != nil:
		r.kvErr = fmt.Errorf("list KubeVirt resources: %w", err)
	case len(list.Items) == 0:
		r.kvErr = errors.New("no KubeVirt resource in the cluster")
	default:
		r.kv = &list.Items[0]
	}
}

const installKubeVirt = "install KubeVirt and wait until its KubeVirt resource is Available (`make cluster` does on kind)"

func checkKubeVirt(_ context.Context, r *run) verdict {
	if r.kvErr != nil {
		return fail(installKubeVirt, "%v", r.kvErr)
	}
	kv := r.kv
	for _, c := range kv.Status.Conditions {
		if c.Type == kvv1.KubeVirtConditionAvailable && c.Status == corev1.ConditionTrue {
			return pass("KubeVirt %s Available (%s/%s)", kv.Status.ObservedKubeVirtVersion, kv.Namespace, kv.Name)
		}
	}
	return fail("wait for it, or read `kubectl -n "+kv.Namespace+" get kubevirt "+kv.Name+" -o yaml` for why not",
		"KubeVirt %s/%s is not Available (phase %q)", kv.Namespace, kv.Name, kv.Status.Phase)
}

// kvmResource is the device plugin resource KubeVirt's virt-handler offers on nodes with a
// usable /dev/kvm.
const kvmResource corev1.ResourceName = "devices.kubevirt.io/kvm"

func checkKVM(ctx context.Context, r *run) verdict {
	if r.kv != nil {
		if dc := r.kv.Spec.Configuration.DeveloperConfiguration; dc != nil && dc.UseEmulation {
			return pass("useEmulation is set: guests are emulated, timeouts scaled by %g", r.cfg.EmulationScale)
		}
	}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	list, err := r.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail("", "list nodes: %v", err)
	}
	var without []string
	for _, n := range list.Items {
		if !slices.Contains(r.Nodes, n.Name) {
			continue
		}
		q, ok := n.Status.Allocatable[kvmResource]
		if !ok || q.IsZero() {
			without = append(without, n.Name)
		}
	}
	if len(without) > 0 {
		return fail("enable hardware virtualization there (virt-handler then offers "+string(kvmResource)+"), or set spec.configuration.developerConfiguration.useEmulation in the KubeVirt resource",
			"no allocatable %s on node(s) %s, and useEmulation is not set", kvmResource, strings.Join(without, ", "))
	}
	return pass("%s allocatable on every node (%d)", kvmResource, len(r.Nodes))
}

const installMultus = "install Multus (its DaemonSet's name must contain \"multus\") and wait until its pods are ready"

func checkMultus(ctx context.Context, r *run) verdict {
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	sets, err := multus.DaemonSets(ctx, r.Kube)
	if err != nil {
		return fail("", "%v", err)
	}
	if len(sets) == 0 {
		return fail(installMultus, "no Multus DaemonSet in any namespace")
	}
	var running, notReady []string
	for _, ds := range sets {
		s := multus.Readiness(ds)
		if ds.Status.DesiredNumberScheduled == 0 || ds.Status.NumberReady < ds.Status.DesiredNumberScheduled {
			notReady = append(notReady, s)
		} else {
			running = append(running, s)
		}
	}
	if len(notReady) > 0 {
		return fail(installMultus, "Multus DaemonSet %s", strings.Join(notReady, "; "))
	}
	if r.NADs != nil {
		if _, err := r.NADs.K8sCniCncfIoV1().NetworkAttachmentDefinitions(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			return fail("install Multus's NetworkAttachmentDefinition CRD (k8s.cni.cncf.io)", "Multus runs (%s) but NetworkAttachmentDefinitions cannot be listed: %v", strings.Join(running, "; "), err)
		}
	}
	return pass("Multus DaemonSet %s", strings.Join(running, "; "))
}

// probeParallelism is how many nodes a check probes at once: a large cluster should not wait
// for its nodes one by one, nor get a probe pod on every node at once.
const probeParallelism = 4

// eachNode runs probe on every node and returns the problems it reported, in node order; a
// node whose probe image could not be pulled is not probed again and reported as such.
func (r *run) eachNode(ctx context.Context, probe func(ctx context.Context, node string) string) []string {
	problems := make([]string, len(r.Nodes))
	var wg sync.WaitGroup
	slots := make(chan struct{}, probeParallelism)
	for i, node := range r.Nodes {
		r.mu.Lock()
		pullErr := r.unpullable[node]
		r.mu.Unlock()
		if pullErr != nil {
			problems[i] = fmt.Sprintf("node %s %s", node, notProbed)
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			problems[i] = probe(ctx, node)
		})
	}
	wg.Wait()
	return slices.DeleteFunc(problems, func(p string) bool { return p == "" })
}

// notProbed ends a node's problem when the probe image could not be pulled there.
var notProbed = "not probed: the probe image cannot be pulled there (see " + PXEServerImage + ")"

// nodesFailed is a node check's failure on problems, with fix as what to do unless every
// problem is a node left unprobed, when the image's check says what to do.
func nodesFailed(fix string, problems []string) verdict {
	if !slices.ContainsFunc(problems, func(p string) bool { return !strings.HasSuffix(p, notProbed) }) {
		fix = "make the probe image pullable first (" + PXEServerImage + ")"
	}
	return fail(fix, "%s", strings.Join(problems, "; "))
}

func checkImage(ctx context.Context, r *run) verdict {
	img := r.cfg.Images.PXEServer
	var pullProblems []string
	problems := r.eachNode(ctx, func(ctx context.Context, node string) string {
		_, err := r.Node.NodeExec(ctx, node, "true")
		var pe *nodeexec.ImagePullError
		switch {
		case errors.As(err, &pe):
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.unpullable == nil {
				r.unpullable = map[string]error{}
			}
			r.unpullable[node] = err
			pullProblems = append(pullProblems, strings.TrimSpace(fmt.Sprintf("node %s: %s %s", node, pe.Reason, pe.Message)))
			return ""
		case err != nil:
			return fmt.Sprintf("probe pod on node %s: %v", node, err)
		}
		return ""
	})
	if len(pullProblems) > 0 {
		slices.Sort(pullProblems)
		return fail("make it pullable by every node (push it where they pull from, or load it into their container runtime) and set images.pxeServer to its reference",
			"image %s cannot be pulled: %s", img, strings.Join(append(pullProblems, problems...), "; "))
	}
	if len(problems) > 0 {
		return fail("read the probe pods' events in the preflight namespace", "%s", strings.Join(problems, "; "))
	}
	return pass("image %s runs on every node (%d)", img, len(r.Nodes))
}

// cniScript lists CNIBinDir only when it is the node's, mounted into the probe (CNINode): a
// directory of the probe image's own must not pass for the node's.
const cniScript = `if awk '$5 == "` + CNIBinDir + `" { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  ls -1 ` + CNIBinDir + `
else
  echo "` + CNIBinDir + ` is not the node's: the probe does not mount it" >&2; exit 3
fi`

// cniNeeded are the plugins the suite's NetworkAttachmentDefinitions name.
var cniNeeded = []string{"bridge", "static"}

func checkCNIPlugins(ctx context.Context, r *run) verdict {
	if r.CNINode == nil {
		return fail("give the preflight a runner that mounts "+CNIBinDir, "no node runner with %s mounted", CNIBinDir)
	}
	problems := r.eachNode(ctx, func(ctx context.Context, node string) string {
		out, err := r.CNINode.NodeExec(ctx, node, "sh", "-c", cniScript)
		if err != nil {
			return fmt.Sprintf("node %s: %v", node, err)
		}
		have := strings.Fields(string(out))
		var missing []string
		for _, p := range cniNeeded {
			if !slices.Contains(have, p) {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("node %s lacks %s in %s", node, strings.Join(missing, ", "), CNIBinDir)
		}
		return ""
	})
	if len(problems) > 0 {
		return nodesFailed("install the CNI reference plugins (bridge, static) into "+CNIBinDir+" on every node", problems)
	}
	return pass("%s in %s on every node (%d)", strings.Join(cniNeeded, " and "), CNIBinDir, len(r.Nodes))
}

// bridgeProblems probes for bridge name on every node.
func (r *run) bridgeProblems(ctx context.Context, name string) []string {
	return r.eachNode(ctx, func(ctx context.Context, node string) string {
		ok, err := network.BridgeExists(ctx, r.Node, node, name)
		switch {
		case err != nil:
			return err.Error()
		case !ok:
			return fmt.Sprintf("bridge %q absent on node %s", name, node)
		}
		return ""
	})
}

func checkBridge(ctx context.Context, r *run) verdict {
	if p := r.bridgeProblems(ctx, r.cfg.Bridge); len(p) > 0 {
		return nodesFailed(fmt.Sprintf("create bridge %q on every node, or set bridge to the one that carries the PXE network", r.cfg.Bridge), p)
	}
	return pass("bridge %q on every node (%d)", r.cfg.Bridge, len(r.Nodes))
}

func checkIsolationBridge(ctx context.Context, r *run) verdict {
	b := r.cfg.IsolationBridge
	switch {
	case r.cfg.Skip.Isolation:
		return skip("skipped by skip.isolation")
	case b == "":
		return skip("no isolation bridge configured (isolationBridge is empty)")
	}
	if p := r.bridgeProblems(ctx, b); len(p) > 0 {
		return nodesFailed(fmt.Sprintf("the isolation spec skips; create bridge %q, unconnected to %q, on every node, or set skip.isolation", b, r.cfg.Bridge), p)
	}
	return pass("isolation bridge %q on every node (%d)", b, len(r.Nodes))
}

func checkNetfilter(ctx context.Context, r *run) verdict {
	var notes []string
	var mu sync.Mutex
	problems := r.eachNode(ctx, func(ctx context.Context, node string) string {
		f, err := network.CheckBridgeNetfilter(ctx, r.Node, node, r.cfg.Bridge)
		switch {
		case err != nil:
			return fmt.Sprintf("node %s: %v", node, err)
		case f.Problem:
			return fmt.Sprintf("node %s: %s", node, f.Message)
		}
		mu.Lock()
		notes = append(notes, f.Message)
		mu.Unlock()
		return ""
	})
	if len(problems) > 0 {
		// The finding's message already says what to do.
		return nodesFailed("", problems)
	}
	slices.Sort(notes)
	return pass("on every node (%d): %s", len(r.Nodes), strings.Join(slices.Compact(notes), "; "))
}

func checkVLAN(ctx context.Context, r *run) verdict {
	if r.cfg.Skip.VLAN {
		return skip("skipped by skip.vlan")
	}
	if len(r.Nodes) == 0 || r.LinkNode == nil {
		return fail("", "no node or no link-changing runner to probe with")
	}
	node := r.Nodes[0]
	r.mu.Lock()
	pullErr := r.unpullable[node]
	r.mu.Unlock()
	if pullErr != nil {
		return nodesFailed("", []string{"node " + node + " " + notProbed})
	}
	ok, reason, err := network.VLANSupported(ctx, r.LinkNode, node)
	switch {
	case err != nil:
		return fail("the VLAN spec skips; set skip.vlan to say so", "VLAN support on node %s: %v", node, err)
	case !ok:
		return fail("the VLAN spec skips; set skip.vlan to say so", "%s", reason)
	}
	return pass("node %s bridges 802.1Q VLANs", node)
}

// screenshotGroupVersion and screenshotResource are where KubeVirt v1.7 and later list the
// screenshot subresource in API discovery.
const (
	screenshotGroupVersion = "subresources.kubevirt.io/v1"
	screenshotResource     = "virtualmachineinstances/vnc/screenshot"
)

func checkScreenshotAPI(ctx context.Context, r *run) verdict {
	const fallback = "the suite reads the screen over VNC with preserveSession instead; KubeVirt v1.7 or later has the subresource"
	list, err := bounded(ctx, r.cfg.Timeouts.NodeProbe, func() (*metav1.APIResourceList, error) {
		return r.Kube.Discovery().ServerResourcesForGroupVersion(screenshotGroupVersion)
	})
	if err != nil {
		return fail(fallback, "read %s from API discovery: %v", screenshotGroupVersion, err)
	}
	for _, res := range list.APIResources {
		if res.Name == screenshotResource {
			return pass("%s lists %s", screenshotGroupVersion, screenshotResource)
		}
	}
	return fail(fallback, "%s does not list %s", screenshotGroupVersion, screenshotResource)
}

// bounded calls read, which takes no context (API discovery), and gives up after bound.
func bounded[T any](ctx context.Context, bound time.Duration, read func() (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	type answer struct {
		v   T
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := read()
		got <- answer{v, err}
	}()
	select {
	case a := <-got:
		return a.v, a.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("no answer within %s: %w", bound, ctx.Err())
	}
}

func checkGuestConsoleLog(_ context.Context, r *run) verdict {
	if r.kvErr != nil {
		return fail(installKubeVirt, "cannot read the KubeVirt resource: %v", r.kvErr)
	}
	kv := r.kv
	if vmo := kv.Spec.Configuration.VirtualMachineOptions; vmo != nil && vmo.DisableSerialConsoleLog != nil {
		return fail("a failed spec's artifacts lack the serial output from the first byte; remove spec.configuration.virtualMachineOptions.disableSerialConsoleLog to have it",
			"%s/%s sets virtualMachineOptions.disableSerialConsoleLog: virt-launcher runs no guest-console-log container", kv.Namespace, kv.Name)
	}
	return pass("%s/%s leaves the serial console log on: virt-launcher runs guest-console-log (if launchers hang in Init, see KubeVirt issue 15989)", kv.Namespace, kv.Name)
}
