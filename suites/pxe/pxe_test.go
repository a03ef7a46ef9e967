//go:build e2e

package pxe

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	kvv1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/e2e"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/framework/vmiguest"
	"github.com/pxe-conformance/pxe-conformance/suites/labels"
)

// Names of the spec's NetworkAttachmentDefinitions.
const (
	vmNAD     = "pxe-net"        // the VM's: bridge CNI, no IPAM
	serverNAD = "pxe-server-net" // the PXE server's: same bridge, fixed address
)

// setUpNetwork runs the procedure's first three steps in the spec's namespace on the run's
// bridge: the bridge is connected (preflight checked it, or the suite made it by policy), the
// PXE server runs on it with allowed on its allow-list, and the VM's
// NetworkAttachmentDefinition exists.
func setUpNetwork(ctx context.Context, s *e2e.Spec, allowed []string) {
	GinkgoHelper()
	how := "exists on every node (preflight)"
	if env.Config.BridgeCreate == settings.BridgeByNNCP {
		how = "made on every node by NodeNetworkConfigurationPolicy before the specs"
	}
	connectNetwork(ctx, s, env.Config.Bridge, how, allowed)
}

// connectNetwork runs those steps on bridge, which is connected as how says.
func connectNetwork(ctx context.Context, s *e2e.Spec, bridge, how string, allowed []string) {
	GinkgoHelper()
	vlan := env.Config.VLAN
	By(fmt.Sprintf("Connect the Linux bridge: %s %s", bridge, how))
	deployServer(ctx, s, bridge, vlan, allowed)
	By(fmt.Sprintf("Create the NetworkAttachmentDefinition %s: bridge %s, VLAN %d, no IPAM", vmNAD, bridge, vlan))
	Expect(s.CreateNAD(ctx, vmNAD, bridge, vlan)).To(Succeed())
}

// deployServer puts the PXE server on bridge (and VLAN, 0 for none) with allowed on its
// allow-list.
func deployServer(ctx context.Context, s *e2e.Spec, bridge string, vlan int, allowed []string) {
	GinkgoHelper()
	By(fmt.Sprintf("Put the PXE server on the same network: a pod on %s (VLAN %d), allow-list %v", bridge, vlan, allowed))
	Expect(s.CreateServerNAD(ctx, serverNAD, bridge, vlan)).To(Succeed())
	srv, err := s.DeployPXEServer(ctx, serverNAD, allowed)
	Expect(err).NotTo(HaveOccurred())
	By(fmt.Sprintf("PXE server %s/%s runs on node %s at %s", srv.Namespace, srv.Name, srv.Node, srv.Address))
}

// bootVMI creates the documented VMI (vmi.PXEClient) with the bridge interface's MAC on nad,
// starts it with its console attached, and returns the procedure for that MAC.
func bootVMI(ctx context.Context, s *e2e.Spec, mac, nad string, fw firmware.Firmware, opts ...vmi.Option) *procedure.Boot {
	GinkgoHelper()
	v := vmi.PXEClient("pxe-guest", mac, nad, fw, append([]vmi.Option{vmi.WithNodeSelector(corev1.LabelHostname, s.NodeOf())}, opts...)...)
	order, validate := "bootOrder 1", vmi.Validate
	if iface := v.Spec.Domain.Devices.Interfaces[1]; iface.BootOrder == nil {
		order, validate = "no bootOrder", vmi.ValidateNoBootOrder
		if pod := v.Spec.Domain.Devices.Interfaces[0]; pod.BootOrder != nil {
			// A boot order elsewhere only: the suite's validators know no such VMI, KubeVirt's
			// admission still checks it.
			order = fmt.Sprintf("no bootOrder (eth0 has bootOrder %d)", *pod.BootOrder)
			validate = func(*kvv1.VirtualMachineInstance) error { return nil }
		}
	}
	By(fmt.Sprintf("Create the VirtualMachineInstance: eth0 masquerade on the pod network, eth1 bridge on %s with MAC %s and %s, %s firmware", nad, mac, order, fw))
	Expect(validate(v)).To(Succeed())
	By("Wait for the VMI to run, attach its serial console, unpause it")
	Expect(s.StartVMI(ctx, v)).To(Succeed())
	boot, err := s.Boot(mac)
	Expect(err).NotTo(HaveOccurred())
	return boot
}

func firmwareLabel(f firmware.Firmware) string {
	if f == firmware.EFI {
		return labels.EFI
	}
	return labels.BIOS
}

// skipUnlessFirmware skips a spec for firmware the run did not select.
func skipUnlessFirmware(f firmware.Firmware) {
	if !slices.Contains(env.Config.Firmware, f) {
		Skip(fmt.Sprintf("firmware %s is not selected (firmware: %v)", f, env.Config.Firmware))
	}
}

// The documented procedure boots the configured MAC, so its specs run one after the other on one
// process (Ordered), also under `ginkgo -p`; ContinueOnFailure keeps a failed BIOS boot from
// skipping the EFI one. The other specs boot their own process's MAC (env.OwnMAC).
var _ = Describe("PXE booting a VirtualMachineInstance over a bridge network", Label(labels.PXE), Ordered, ContinueOnFailure, func() {
	for _, fw := range firmware.All {
		It(fmt.Sprintf("follows the documented procedure with %s firmware", fw), Label(firmwareLabel(fw), labels.Certification), specTimeout(), func(ctx SpecContext) {
			skipUnlessFirmware(fw)
			s := newSpec(ctx)
			mac := env.Config.MAC
			setUpNetwork(ctx, s, env.Config.AllowList())
			followProcedure(ctx, s, mac, fw)
		})
	}
})

// followProcedure boots the documented VMI (MAC mac on the VM's NetworkAttachmentDefinition,
// bootOrder 1, firmware fw) from the spec's PXE server and checks every step of the documented
// procedure, from iPXE on the console to eth1 and eth0 in the guest and the server's own log.
func followProcedure(ctx context.Context, s *e2e.Spec, mac string, fw firmware.Firmware) {
	GinkgoHelper()
	boot := bootVMI(ctx, s, mac, vmNAD, fw)

	By("Watch the boot: iPXE opens the bridge interface on the serial console")
	line, err := boot.WaitIPXE(ctx)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Printf("console: %q\n", line)

	By("View the VM using VNC: capture the boot screen as a PNG")
	s.Screenshot, err = boot.CaptureScreen(ctx)
	Expect(err).NotTo(HaveOccurred())
	png, err := s.SaveScreenshot(artifactDir(CurrentSpecReport()))
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("boot screen", fmt.Sprintf("%s (%dx%d) via %s", png, s.Screenshot.Bounds().Dx(), s.Screenshot.Bounds().Dy(), s.Guest.ScreenVia))
	expectScreenshotTakesNoSession(ctx, s, boot)

	By("The PXE server answers the VM's DHCP with its reserved address")
	ack, err := boot.WaitDHCP(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(ack.IP).NotTo(BeEmpty())

	By("The PXE server serves the iPXE script, kernel and initramfs over HTTP")
	payload, err := boot.WaitPayload(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(payload.Kernel.Bytes).To(BeNumerically("==", fileSize(env.Payload.Kernel)), "kernel bytes served")
	Expect(payload.Initrd.Bytes).To(BeNumerically("==", fileSize(env.Payload.Initrd)), "initramfs bytes served")

	By("The guest is ready: its ready line carries the MAC and the served script's nonce")
	ready, err := boot.WaitReady(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(boot.CheckReady(ready, payload.Nonce)).To(Succeed(), "the guest booted from another script than the one served to %s", mac)

	By("Log in over SSH (KubeVirt port-forward) with the host key pinned from the console")
	client, err := s.SSH(ctx, boot, ready.HostKeyFingerprint)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(client.Close)

	By("Log in on the serial console")
	host, err := s.Login(ctx, boot)
	Expect(err).NotTo(HaveOccurred())
	Expect(host).NotTo(BeEmpty())

	By("Verify eth1 carries the specified MAC and has no IP address")
	ifs, err := boot.Interfaces(ctx, client)
	Expect(err).NotTo(HaveOccurred())
	eth1, err := procedure.CheckBridgeNIC(ifs, "eth1", boot.MAC)
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Println(eth1)

	By("Verify eth0 (pod network) has an IPv4 address")
	eth0, err := procedure.CheckPodNIC(ifs, "eth0")
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Println(eth0)

	By("The PXE server's events for the MAC tell the same story")
	events, err := boot.Events(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(kinds(events)).To(ContainElements(pxe.KindDHCPAck, pxe.KindScript, pxe.KindHTTP))
	Expect(kinds(events)).NotTo(ContainElement(pxe.KindDHCPIgnored))
	AddReportEntry("boot chain", procedure.BootChain(events))

	By("The PXE server answered no other guest on the bridge (other specs' guests may share it)")
	c, cancel := context.WithTimeout(ctx, env.Config.Timeouts.DHCP)
	defer cancel()
	all, err := s.PXE.Events(c, "")
	Expect(err).NotTo(HaveOccurred())
	Expect(answeredOutside(all, s.Allowed)).To(BeEmpty(), "DHCP answers to MACs not on the server's allow-list")
	Expect(s.SaveEvents(artifactDir(CurrentSpecReport()), events)).To(Succeed(), "the results page's timeline")
	s.Timings.Mark(procedure.StepDone)
}

var _ = Describe("PXE boot negative cases", Label(labels.PXE, labels.Negative), func() {
	It("never answers a VMI whose MAC is not on the PXE server's allow-list, and says so at once", Label(labels.BIOS, labels.Certification), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		allowed := env.OwnAllowList()
		unknown := env.UnlistedMAC()
		setUpNetwork(ctx, s, allowed)
		boot := bootVMI(ctx, s, unknown, vmNAD, firmware.BIOS)

		By("iPXE opens the bridge interface and asks for DHCP")
		_, err := boot.WaitIPXE(ctx)
		Expect(err).NotTo(HaveOccurred())
		start := time.Now()
		By("The wait for DHCP fails fast, naming the missing answer")
		_, err = boot.WaitDHCP(ctx)
		Expect(err).To(MatchError(procedure.ErrNoDHCPAnswer))
		Expect(err.Error()).To(ContainSubstring("no DHCP answer for " + unknown))
		Expect(err.Error()).To(ContainSubstring(pxe.ReasonNotAllowListed))
		AddReportEntry("failed fast", fmt.Sprintf("%.1fs after iPXE opened the NIC: %v", time.Since(start).Seconds(), err))

		By("The PXE server offered nothing to the MAC")
		events, err := boot.Events(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(kinds(events)).NotTo(ContainElements(pxe.KindDHCPOffer))
		Expect(kinds(events)).NotTo(ContainElements(pxe.KindDHCPAck))
	})

	It("never tries a bridge interface without bootOrder", Label(labels.BIOS, labels.Certification), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		boot := bootVMI(ctx, s, mac, vmNAD, firmware.BIOS, vmi.WithoutBootOrder(vmi.PXEInterface))

		expectNeverTried(ctx, s, boot, "SeaBIOS", "No bootable device")
	})

	It("gets no DHCP answer when the PXE server is down", Label(labels.BIOS, labels.Certification), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		By("Take the PXE server down")
		Expect(s.PXE.Delete(ctx)).To(Succeed())
		boot := bootVMI(ctx, s, mac, vmNAD, firmware.BIOS)
		_, err := boot.WaitIPXE(ctx)
		Expect(err).NotTo(HaveOccurred())
		expectDHCPTimeout(ctx, s)
	})
})

var _ = Describe("PXE network isolation", Label(labels.PXE, labels.Isolation), func() {
	It("keeps a VMI on another bridge away from the PXE server", Label(labels.BIOS), specTimeout(), func(ctx SpecContext) {
		if env.IsolationReason != "" {
			Skip(env.IsolationReason)
		}
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		By(fmt.Sprintf("Attach the VMI to bridge %s instead of %s", env.Config.IsolationBridge, env.Config.Bridge))
		Expect(s.CreateNAD(ctx, "other-net", env.Config.IsolationBridge, env.Config.VLAN)).To(Succeed())
		expectUnheard(ctx, s, mac, "other-net")
	})

	It("keeps two networks on different VLANs of one bridge apart", Label(labels.BIOS, labels.VLAN), specTimeout(), func(ctx SpecContext) {
		if env.VLANReason != "" {
			Skip(env.VLANReason)
		}
		s := newSpec(ctx)
		mac := env.OwnMAC()
		bridge := env.Config.Bridge
		serverVLAN, vmVLAN := 100, 200
		if env.Config.VLAN != 0 {
			serverVLAN = env.Config.VLAN
			vmVLAN = serverVLAN%4094 + 1
		}
		By(fmt.Sprintf("PXE server on VLAN %d of %s, VMI on VLAN %d", serverVLAN, bridge, vmVLAN))
		deployServer(ctx, s, bridge, serverVLAN, env.OwnAllowList())
		Expect(s.CreateNAD(ctx, vmNAD, bridge, vmVLAN)).To(Succeed())
		expectUnheard(ctx, s, mac, vmNAD)
	})
})

// expectUnheard boots a VMI whose bridge interface on nad cannot reach the running PXE server: iPXE
// asks for DHCP in vain, and the server's log holds no DHCP message from the MAC.
func expectUnheard(ctx context.Context, s *e2e.Spec, mac, nad string) {
	GinkgoHelper()
	boot := bootVMI(ctx, s, mac, nad, firmware.BIOS)
	_, err := boot.WaitIPXE(ctx)
	Expect(err).NotTo(HaveOccurred())
	expectDHCPTimeout(ctx, s)
	By("The PXE server never heard from the MAC")
	events, err := boot.Events(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(dhcpEvents(events)).To(BeEmpty())
}

// expectNeverTried waits for the firmware to give up (its words givesUp on the console) without
// iPXE ever opening the bridge interface, and checks that the PXE server never heard from it.
func expectNeverTried(ctx context.Context, s *e2e.Spec, boot *procedure.Boot, fw, givesUp string) {
	GinkgoHelper()
	By(fw + " finds nothing to boot")
	c, cancel := context.WithTimeout(ctx, env.Config.Timeouts.GuestReady)
	defer cancel()
	_, err := s.Guest.Console().Expect(c, console.Phrase(givesUp), console.Named(fw+" giving up"),
		console.FailOn(procedure.IPXELine(boot.MAC)))
	Expect(err).NotTo(HaveOccurred(), "the NIC without bootOrder must not be tried")

	By("The PXE server never heard from the MAC")
	events, err := boot.Events(ctx)
	Expect(err).NotTo(HaveOccurred())
	Expect(dhcpEvents(events)).To(BeEmpty())
}

// expectDHCPTimeout waits for iPXE to give up on DHCP on the console, with no address seen.
func expectDHCPTimeout(ctx context.Context, s *e2e.Spec) {
	GinkgoHelper()
	By("iPXE's DHCP times out: no address is ever configured")
	c, cancel := context.WithTimeout(ctx, 2*env.Config.Timeouts.DHCP)
	defer cancel()
	_, err := s.Guest.Console().Expect(c, regexp.MustCompile(`No configuration methods succeeded|Connection timed out|No bootable device`),
		console.Named("iPXE giving up on DHCP"), console.FailOn(regexp.MustCompile(`net\d+: \d+\.\d+\.\d+\.\d+/`)))
	Expect(err).NotTo(HaveOccurred())
}

// expectScreenshotTakesNoSession checks that the boot screen is read without taking anyone's
// console: a VNC viewer stays connected while the screen is captured again, and still reads the
// display afterwards. On a cluster without the screenshot subresource the suite's own VNC
// connection asks for preserveSession (KubeVirt then refuses it rather than disconnect a
// viewer), and there is no second session to hold.
func expectScreenshotTakesNoSession(ctx context.Context, s *e2e.Spec, boot *procedure.Boot) {
	GinkgoHelper()
	if s.Guest.ScreenVia != vmiguest.ViaScreenshotAPI {
		AddReportEntry("VNC viewer check", "not run: the screen was read "+s.Guest.ScreenVia)
		return
	}
	By("A VNC viewer stays connected while the boot screen is captured again")
	viewer, err := s.Guest.OpenVNC(ctx)
	Expect(err).NotTo(HaveOccurred(), "a VNC viewer could not connect")
	DeferCleanup(viewer.Close)
	_, err = boot.CaptureScreen(ctx)
	Expect(err).NotTo(HaveOccurred())
	_, err = viewer.Capture(ctx)
	Expect(err).NotTo(HaveOccurred(), "the VNC viewer's session did not survive the screenshot")
}

// answeredOutside lists the DHCP offers and acknowledgements in events to MACs not in allowed.
func answeredOutside(events []pxe.Event, allowed []string) []string {
	var out []string
	for _, e := range events {
		if (e.Kind == pxe.KindDHCPOffer || e.Kind == pxe.KindDHCPAck) &&
			!slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, e.MAC) }) {
			out = append(out, fmt.Sprintf("%s %s", e.Kind, e.MAC))
		}
	}
	return out
}

func kinds(events []pxe.Event) []pxe.EventKind {
	var k []pxe.EventKind
	for _, e := range events {
		k = append(k, e.Kind)
	}
	return k
}

func dhcpEvents(events []pxe.Event) []pxe.Event {
	var out []pxe.Event
	for _, e := range events {
		if e.Protocol == pxe.ProtoDHCP {
			out = append(out, e)
		}
	}
	return out
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}
