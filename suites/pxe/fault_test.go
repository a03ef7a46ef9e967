//go:build e2e

package pxe

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/e2e"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/suites/labels"
)

// The fault specs run one at a time (Serial): those that change the nodes (a CNI plugin taken
// away, Multus stopped, a firewall rule) would break any spec running beside them. Each fault
// must be named by the step that meets it, fast, in words a person acts on; each spec asserts
// those words, so a diagnosis that regresses fails it.
var _ = Describe("PXE faults the suite names", Label(labels.PXE, labels.Fault), Serial, func() {
	It("fails at once, quoting the pod's sandbox event, when the bridge CNI plugin is missing on the nodes", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		skipUnlessFaultInjection()
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

	It("fails at once, naming Multus, when Multus is stopped", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		skipUnlessFaultInjection()
		s := newSpec(ctx)
		By("Stop Multus: its DaemonSets' pods are kept off every node (restored, and waited for, when the spec ends)")
		stopMultus(ctx)

		By("Put the PXE server on the network: its pod comes up on the pod network alone")
		Expect(s.CreateServerNAD(ctx, serverNAD, env.Config.Bridge, env.Config.VLAN)).To(Succeed())
		start := time.Now()
		_, err := s.DeployPXEServer(ctx, serverNAD, env.OwnAllowList())
		Expect(err).To(MatchError(ContainSubstring("it runs without its network attachment %s/%s (interface net1): Multus did not set up the pod's networks", s.Namespace, serverNAD)))
		Expect(err).To(MatchError(ContainSubstring("0 of 0 pods ready")), "the message says Multus's DaemonSet runs nowhere")
		AddReportEntry("PXE server failed fast", fmt.Sprintf("%.1fs after the pod was created: %v", time.Since(start).Seconds(), err))

		By("A VMI on the PXE network fails at once as well: its virt-launcher pod lacks the attachment")
		Expect(s.CreateNAD(ctx, vmNAD, env.Config.Bridge, env.Config.VLAN)).To(Succeed())
		start = time.Now()
		err = s.StartVMI(ctx, vmi.PXEClient("pxe-guest", env.OwnMAC(), vmNAD, firmware.BIOS))
		Expect(err).To(MatchError(ContainSubstring("virt-launcher pod")))
		Expect(err).To(MatchError(ContainSubstring("it runs without its network attachment %s/%s", s.Namespace, vmNAD)))
		Expect(err).To(MatchError(ContainSubstring("Multus did not set up the pod's networks")))
		AddReportEntry("VMI failed fast", fmt.Sprintf("%.1fs after the VMI was created: %v", time.Since(start).Seconds(), err))
	})

	It("fails the payload's wait at once, saying the PXE server is gone, when the server dies after its DHCP ACK", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		bridge, vlan := env.Config.Bridge, env.Config.VLAN
		By(fmt.Sprintf("Put the PXE server on %s with its crash hook (--crash-after=%s): it exits right after its first DHCP ACK", bridge, pxe.CrashAfterDHCPAck))
		Expect(s.CreateServerNAD(ctx, serverNAD, bridge, vlan)).To(Succeed())
		_, err := s.DeployPXEServer(ctx, serverNAD, env.OwnAllowList(), e2e.WithCrashAfter(pxe.CrashAfterDHCPAck))
		Expect(err).NotTo(HaveOccurred())
		Expect(s.CreateNAD(ctx, vmNAD, bridge, vlan)).To(Succeed())
		boot := bootVMI(ctx, s, mac, vmNAD, firmware.BIOS)
		_, err = boot.WaitIPXE(ctx)
		Expect(err).NotTo(HaveOccurred())

		By("The PXE server acknowledges the VM's DHCP, then dies (its ACK is read back from its log)")
		ack, err := boot.WaitDHCP(ctx)
		Expect(err).NotTo(HaveOccurred())

		By("The wait for the payload fails at once: the PXE server is gone")
		_, err = boot.WaitPayload(ctx)
		Expect(err).To(MatchError(pxe.ErrServerGone), "the wait must end on the server's death, not run out its bound")
		Expect(err).To(MatchError(ContainSubstring("payload transfer stopped: the PXE server is gone")))
		Expect(err).To(MatchError(ContainSubstring("exited 3")), "the message says what became of the server")
		Expect(err).To(MatchError(ContainSubstring("it had served %s a DHCP ACK (%s) and nothing after", mac, ack.IP)))
		AddReportEntry("failed fast", fmt.Sprintf("%.1fs after the DHCP ACK: %v", time.Since(ack.Time).Seconds(), err))
	})

	It("fails within seconds of iPXE giving up, naming the node's bridge netfilter setting and the rule, when a node rule drops bridged DHCP", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		skipUnlessFaultInjection()
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		By("Drop bridged DHCP on every node: iptables -I FORWARD " + strings.Join(dhcpDropRule, " ") + " (removed when the spec ends)")
		insertOnNodes(ctx, dhcpDropRule)

		boot := bootVMI(ctx, s, mac, vmNAD, firmware.BIOS)
		_, err := boot.WaitIPXE(ctx)
		Expect(err).NotTo(HaveOccurred())
		gaveUp := noteWhen(ctx, s.Guest.Console(), procedure.IPXEGaveUp)

		By("iPXE gives up on DHCP; the wait fails at once, naming the node's setting and the rule that drops")
		_, err = boot.WaitDHCP(ctx)
		failed := time.Now()
		Expect(err).To(MatchError(console.ErrFailPattern), "iPXE's giving up must end the wait, not its bound")
		Expect(err).To(MatchError(ContainSubstring("no DHCP answer for %s: the PXE server received no DHCP message from it", mac)))
		Expect(err).To(MatchError(ContainSubstring("%s is 1", network.BridgeNFCallIPTables)))
		Expect(err).To(MatchError(ContainSubstring("`-A FORWARD -p udp -m physdev --physdev-is-bridged -m udp --dport 67 -j DROP` drops DHCP")),
			"the rule as the node's iptables -S prints it")
		AddReportEntry("failed fast", fmt.Sprintf("%.1fs after iPXE gave up: %v", failed.Sub(gaveUp()).Seconds(), err))
	})

	It("PXE boots again when the guest reboots: a second DHCP ACK, a new nonce, the guest ready again", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		boot := bootVMI(ctx, s, mac, vmNAD, firmware.BIOS)
		first := expectBootedOverPXE(ctx, s, boot)

		By("Reboot the guest over SSH (reboot -f)")
		Expect(boot.NextBoot(ctx)).To(Succeed())
		_, err := first.client.Output(ctx, "(sleep 1; reboot -f) >/dev/null 2>&1 </dev/null &")
		Expect(err).NotTo(HaveOccurred())
		first.client.Close()
		rebooted := time.Now()
		boot.SkipBootMenu(ctx)
		second := expectBootedOverPXE(ctx, s, boot)
		DeferCleanup(second.client.Close)
		Expect(second.ack.Time).To(BeTemporally(">", first.ack.Time), "a second DHCP ACK")
		Expect(second.nonce).NotTo(Equal(first.nonce), "the second boot's script carries a new nonce")

		By("The PXE server's events show two boots, each a DHCP ACK to iPXE and then its own script")
		events, err := boot.Events(ctx)
		Expect(err).NotTo(HaveOccurred())
		// iPXE retransmits a REQUEST whose ACK is slow, so a boot may hold more than one ACK.
		var nonces []string
		acks, acked := 0, false
		for _, e := range events {
			switch {
			case e.Kind == pxe.KindDHCPAck && e.UserClass == "iPXE":
				acks++
				acked = true
			case e.Kind == pxe.KindScript && e.Status == 200:
				Expect(acked).To(BeTrue(), "script %s served with no DHCP ACK to iPXE since the previous boot's", e.Nonce)
				nonces = append(nonces, e.Nonce)
				acked = false
			}
		}
		Expect(nonces).To(Equal([]string{first.nonce, second.nonce}))
		AddReportEntry("second boot", fmt.Sprintf("DHCP ACK %.1fs and ready %.1fs after the reboot; nonces %s then %s; %d ACKs to iPXE in all",
			second.ack.Time.Sub(rebooted).Seconds(), second.ready.Sub(rebooted).Seconds(), first.nonce, second.nonce, acks))
	})
})

// skipUnlessFaultInjection skips a spec that changes the nodes unless the run may.
func skipUnlessFaultInjection() {
	if !env.Config.FaultInjection {
		Skip("fault injection changes the nodes: set faultInjection on a cluster the run owns (make e2e does)")
	}
}

// booted is what one PXE boot of a guest showed.
type booted struct {
	ack    pxe.Event
	nonce  string
	ready  time.Time
	client *guestssh.Client
}

// expectBootedOverPXE runs the procedure's steps from iPXE opening the bridge interface to an
// SSH login.
func expectBootedOverPXE(ctx context.Context, s *e2e.Spec, boot *procedure.Boot) booted {
	GinkgoHelper()
	By("iPXE opens the bridge interface; the PXE server answers its DHCP and serves the payload; the guest is ready with the served nonce")
	_, err := boot.WaitIPXE(ctx)
	Expect(err).NotTo(HaveOccurred())
	ack, err := boot.WaitDHCP(ctx)
	Expect(err).NotTo(HaveOccurred())
	payload, err := boot.WaitPayload(ctx)
	Expect(err).NotTo(HaveOccurred())
	ready, err := boot.WaitReady(ctx)
	Expect(err).NotTo(HaveOccurred())
	at := time.Now()
	Expect(boot.CheckReady(ready, payload.Nonce)).To(Succeed())
	By("Log in over SSH with the host key pinned from the console")
	client, err := s.SSH(ctx, boot, ready.HostKeyFingerprint)
	Expect(err).NotTo(HaveOccurred())
	return booted{ack: ack, nonce: payload.Nonce, ready: at, client: client}
}

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

// dhcpDropRule is a FORWARD rule that drops DHCP requests bridged on a node, as the issue's
// operator added it.
var dhcpDropRule = []string{"FORWARD", "-m", "physdev", "--physdev-is-bridged", "-p", "udp", "--dport", "67", "-j", "DROP"}

// insertOnNodes inserts an iptables rule (its chain first) on every node with the node's own
// iptables, and registers its deletion.
func insertOnNodes(ctx context.Context, rule []string) {
	GinkgoHelper()
	for _, node := range env.Nodes {
		_, err := env.NodeHost.NodeExec(ctx, node, append([]string{"iptables", "-w", "-I"}, rule...)...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := env.NodeHost.NodeExec(ctx, node, append([]string{"iptables", "-w", "-D"}, rule...)...)
			Expect(err).NotTo(HaveOccurred(), "delete the rule again on node %s", node)
		}, NodeTimeout(2*env.Config.Timeouts.NodeProbe))
	}
}

// stopMultus stops every Multus DaemonSet and registers restoring each, waiting until it is
// ready on every node again, so that the specs after this one find Multus as it was.
func stopMultus(ctx context.Context) {
	GinkgoHelper()
	sets, err := multus.DaemonSets(ctx, env.Kube)
	Expect(err).NotTo(HaveOccurred())
	Expect(sets).NotTo(BeEmpty(), "no Multus DaemonSet to stop")
	for _, ds := range sets {
		stopped, err := multus.Stop(ctx, env.Kube, ds, env.Config.Timeouts.PXEServer)
		if stopped != nil {
			DeferCleanup(func(ctx SpecContext) {
				Expect(stopped.Restore(ctx, env.Config.Timeouts.PXEServer)).To(Succeed(), "Multus must be back for the specs that follow")
			}, NodeTimeout(2*env.Config.Timeouts.PXEServer))
		}
		Expect(err).NotTo(HaveOccurred())
	}
}

// noteWhen watches con's text (without moving its cursor) and returns a function that says when
// re first matched, or now if it has not yet, for reporting how soon a step failed after it.
func noteWhen(ctx context.Context, con *console.Console, re *regexp.Regexp) func() time.Time {
	var mu sync.Mutex
	var seen time.Time
	start := len(con.Text())
	go func() {
		for ctx.Err() == nil {
			if re.MatchString(con.Text()[start:]) {
				mu.Lock()
				seen = time.Now()
				mu.Unlock()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if seen.IsZero() {
			return time.Now()
		}
		return seen
	}
}
