//go:build e2e

package pxe

import (
	"context"
	"fmt"
	"path"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/suites/labels"
)

var _ = Describe("PXE faults the suite names", Label(labels.PXE, labels.Fault), Serial, func() {
	It("fails at once, quoting the pod's sandbox event, when the bridge CNI plugin is missing on the nodes", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		if !env.Config.FaultInjection {
			Skip("fault injection changes the nodes: set faultInjection on a cluster the run owns (make e2e does)")
		}
		s := newSpec(ctx)
		By("Take the bridge CNI plugin away on every node (it is put back when the spec ends)")
		takeAwayOnNodes(ctx, cniBinDir, "bridge")

		By("Put the PXE server on the network: its pod's network cannot be set up")
		Expect(s.CreateServerNAD(ctx, serverNAD, env.Config.Bridge, env.Config.VLAN)).To(Succeed())
		start := time.Now()
		_, err := s.DeployPXEServer(ctx, serverNAD, env.OwnAllowList())
		Expect(err).To(MatchError(ContainSubstring("its network could not be set up")))
		Expect(err).To(MatchError(ContainSubstring(`"bridge"`)), "the CNI plugin's own words name the missing plugin")
		AddReportEntry("failed fast", fmt.Sprintf("%.1fs after the pod was created: %v", time.Since(start).Seconds(), err))
	})
})

// cniBinDir is where the nodes keep their CNI plugins.
const cniBinDir = "/opt/cni/bin"

// takeAwayOnNodes renames dir/name on every node and registers putting it back.
func takeAwayOnNodes(ctx context.Context, dir, name string) {
	GinkgoHelper()
	runner, err := env.WritableRunner(dir)
	Expect(err).NotTo(HaveOccurred())
	file, aside := path.Join(dir, name), path.Join(dir, name+".pxec-fault")
	for _, node := range env.Nodes {
		_, err := runner.NodeExec(ctx, node, "mv", file, aside)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := runner.NodeExec(ctx, node, "mv", aside, file)
			Expect(err).NotTo(HaveOccurred(), "put %s back on node %s", file, node)
		}, NodeTimeout(2*env.Config.Timeouts.NodeProbe))
	}
}
