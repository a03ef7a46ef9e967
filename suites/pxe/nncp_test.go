//go:build e2e

package pxe

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/nmstate"
	"github.com/pxe-conformance/pxe-conformance/suites/labels"
)

// The documented procedure's first step, "Configure a PXE network on the cluster", as OpenShift
// Virtualization documents it: a NodeNetworkConfigurationPolicy (kubernetes-nmstate,
// nmstate.io/v1) makes the Linux bridge on the nodes. The spec makes a bridge of its own, so it
// runs beside the others and leaves the run's bridge alone.
var _ = Describe("A PXE network configured by NodeNetworkConfigurationPolicy", Label(labels.PXE, labels.NNCP), func() {
	It("makes a bridge by policy, PXE boots the documented VMI on it, and removes it, leaving every node's interfaces as they were", Label(labels.BIOS), nncpSpecTimeout(), func(ctx SpecContext) {
		if env.NNCPReason != "" {
			Skip(env.NNCPReason)
		}
		skipUnlessFirmware(firmware.BIOS)
		bridge := "pxecnncp" + strings.ToLower(rand.Text()[:4])

		By("Look for a spare link on the nodes for the bridge's port (NodeNetworkState: ethernet, no address, no controller, on every node)")
		states, err := env.NMState.NodeStates(ctx, env.Nodes)
		Expect(err).NotTo(HaveOccurred())
		port, ports := nmstate.SpareLink(states), "port-less (no spare link)"
		if port != "" {
			ports = "port " + port
		}

		By(fmt.Sprintf("Configure a PXE network: record each node's interfaces, create a NodeNetworkConfigurationPolicy for linux-bridge %s (STP off, no address, %s), wait until it is Available and every node's enactment succeeded", bridge, ports))
		br, err := env.BridgeByPolicy(ctx, bridge, port, "nncp")
		if br != nil {
			// A spec that fails before the removal below still removes its bridge.
			DeferCleanup(func(ctx SpecContext) {
				Expect(br.Remove(ctx)).To(Succeed(), "remove bridge %s", bridge)
			}, NodeTimeout(3*env.Config.Timeouts.NodeNetwork))
		}
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("policy", fmt.Sprintf("%s %s: linux-bridge %s, %s, on nodes %v (kubernetes-nmstate: %s)",
			nmstate.PolicyKind, br.Config.Policy, bridge, ports, env.Nodes, br.Versions))

		// The spec's namespace comes after the policy, so its cleanup runs before the
		// policy's: nothing is left on the bridge when it goes.
		s := newSpec(ctx)
		connectNetwork(ctx, s, bridge, "made on every node by "+nmstate.PolicyKind+" "+br.Config.Policy, env.OwnAllowList())
		followProcedure(ctx, s, env.OwnMAC(), firmware.BIOS)

		By("Take the VMI and the PXE server off the bridge")
		c, cancel := context.WithTimeout(ctx, env.Config.Timeouts.Cleanup)
		defer cancel()
		Expect(s.Guest.Delete(c)).To(Succeed())
		Expect(s.PXE.Delete(c)).To(Succeed())

		By(fmt.Sprintf("Remove the bridge: apply %s again with %s absent, wait until every node enacted it, delete the policy", br.Config.Policy, bridge))
		Expect(br.Remove(ctx)).To(Succeed())

		By("Every node's interfaces are the ones it had before the policy (NodeNetworkState)")
		Expect(br.WaitRestored(ctx)).To(Succeed())
	})
})

// nncpSpecTimeout is the procedure's bound with kubernetes-nmstate's three waits: the policy
// Available, its removal, and the nodes reporting their interfaces as before.
func nncpSpecTimeout() SpecTimeout {
	t := specTimeouts()
	return SpecTimeout(t.Spec() + 3*t.NodeNetwork)
}
