package preflight

import (
	"context"
	"fmt"
	"io"
	"strings"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// Status is how a check ended.
type Status string

const (
	// Pass: the cluster has what the check looks for.
	Pass Status = "PASS"
	// Fail: it does not; a failed required check stops the suite.
	Fail Status = "FAIL"
	// Skip: an optional part switched off (settings.Skip) or not configured.
	Skip Status = "SKIP"
)

// Result is one check's outcome.
type Result struct {
	// Check names the check, Required says whether its failure stops the suite.
	Check    string
	Required bool
	Status   Status
	// Reason says what the check found; Fix what to do about it (empty on PASS).
	Reason, Fix string
}

// String is the result's line: "FAIL  bridge  bridge \"br1\" absent on node w2 — create it".
func (r Result) String() string {
	return r.line(len(r.Check))
}

func (r Result) line(width int) string {
	s := fmt.Sprintf("%-4s  %-*s  %s", r.Status, width, r.Check, r.Reason)
	if r.Fix != "" {
		s += " — " + r.Fix
	}
	return s
}

// Cluster is what the checks read.
type Cluster struct {
	Kube kubernetes.Interface
	// KubeVirt reads KubeVirt resources (a KubevirtClient's GeneratedKubeVirtClient().KubevirtV1()).
	KubeVirt kvcorev1.KubeVirtsGetter
	// NADs, when set, must list NetworkAttachmentDefinitions for the Multus check to pass.
	NADs nadclient.Interface
	// Nodes are the nodes to probe: the schedulable, Ready ones.
	Nodes []string
	// Node runs read-only probes on nodes from the PXE server image (nodeexec.PodRunner).
	Node nodeexec.Runner
	// CNINode is Node with the nodes' /opt/cni/bin mounted read-only
	// (nodeexec.WithHostPathReadOnly(CNIBinDir)).
	CNINode nodeexec.Runner
	// LinkNode is Node allowed to change links (NET_ADMIN), for the VLAN probe's throwaway
	// bridge.
	LinkNode nodeexec.Runner
	// NMState reads kubernetes-nmstate's NodeNetworkStates for the versions it runs; nil
	// leaves them unknown. Whether the cluster serves policies at all comes from Kube's API
	// discovery.
	NMState *nmstate.Client
}

// CNIBinDir is where the CNI specification's convention puts the plugins on a node.
const CNIBinDir = "/opt/cni/bin"

// Check is one thing the suite needs of a cluster.
type Check struct {
	// Name is the check's name in the output, Required whether a FAIL stops the suite.
	Name     string
	Required bool
	run      func(ctx context.Context, r *run) verdict
}

// verdict is a check's outcome without its name.
type verdict struct {
	status      Status
	reason, fix string
}

func pass(format string, a ...any) verdict {
	return verdict{status: Pass, reason: fmt.Sprintf(format, a...)}
}

func fail(fix, format string, a ...any) verdict {
	return verdict{status: Fail, reason: fmt.Sprintf(format, a...), fix: fix}
}

func skip(format string, a ...any) verdict {
	return verdict{status: Skip, reason: fmt.Sprintf(format, a...)}
}

// Report is what Run found: every check's result, in order, and what the suite reads of the
// cluster besides.
type Report struct {
	Results []Result
	// KubeVirtVersion is the running KubeVirt's version; Emulation says it emulates the CPU
	// (useEmulation), which scales the suite's timeouts.
	KubeVirtVersion string
	Emulation       bool
}

// Failed returns the failed required checks.
func (r Report) Failed() []Result {
	var failed []Result
	for _, res := range r.Results {
		if res.Required && res.Status == Fail {
			failed = append(failed, res)
		}
	}
	return failed
}

// Unavailable says why the check named name did not pass, for the specs it guards to skip
// with; "" when it passed or Run has no such check.
func (r Report) Unavailable(name string) string {
	for _, res := range r.Results {
		if res.Check == name && res.Status != Pass {
			if res.Fix != "" {
				return res.Reason + " — " + res.Fix
			}
			return res.Reason
		}
	}
	return ""
}

// Write prints one line per check to w, the check names aligned.
func (r Report) Write(w io.Writer) error {
	width := 0
	for _, res := range r.Results {
		width = max(width, len(res.Check))
	}
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.line(width))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Err is nil when no required check failed, and otherwise an error listing every failed
// required check's line.
func (r Report) Err() error {
	failed := r.Failed()
	if len(failed) == 0 {
		return nil
	}
	lines := make([]string, len(failed))
	for i, f := range failed {
		lines[i] = f.String()
	}
	return fmt.Errorf("preflight: %d required check(s) failed:\n%s", len(failed), strings.Join(lines, "\n"))
}

// Run runs every check of Checks in order against c with cfg's settings and bounds. A check
// that cannot read what it needs fails, saying why; Run itself fails only on a cancelled ctx.
func Run(ctx context.Context, c Cluster, cfg settings.Config) (Report, error) {
	r := &run{Cluster: c, cfg: cfg}
	r.readKubeVirt(ctx)
	r.readNMState(ctx)
	var rep Report
	for _, ch := range Checks() {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("preflight: %s: %w", ch.Name, err)
		}
		v := ch.run(ctx, r)
		rep.Results = append(rep.Results, Result{Check: ch.Name, Required: ch.Required, Status: v.status, Reason: v.reason, Fix: v.fix})
	}
	if r.kv != nil {
		rep.KubeVirtVersion = r.kv.Status.ObservedKubeVirtVersion
		if dc := r.kv.Spec.Configuration.DeveloperConfiguration; dc != nil {
			rep.Emulation = dc.UseEmulation
		}
	}
	return rep, nil
}
