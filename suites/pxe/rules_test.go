//go:build e2e

package pxe

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/suites/labels"
)

var _ = Describe("PXE boot rules KubeVirt enforces", Label(labels.PXE, labels.Negative), func() {
	It("refuses a VMI whose two interfaces share a bootOrder", Label(labels.BIOS, labels.Certification), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		By("Create the NetworkAttachmentDefinition " + vmNAD)
		Expect(s.CreateNAD(ctx, vmNAD, env.Config.Bridge, env.Config.VLAN)).To(Succeed())
		By("Create a VirtualMachineInstance whose pod-network interface also has bootOrder 1")
		v := vmi.PXEClient("pxe-guest", mac, vmNAD, firmware.BIOS, vmi.WithBootOrderOn("default", 1))
		Expect(vmi.Validate(v)).NotTo(Succeed(), "the suite's own validation must refuse it too")
		err := s.StartVMI(ctx, v)
		Expect(err).To(MatchError(ContainSubstring("already set for a different device")), "KubeVirt's admission must refuse duplicate boot orders")
		AddReportEntry("refused", err.Error())
	})

	// OVMF needs no boot ROM: it PXE boots any NIC with its own network stack. With no boot
	// order on any device it did try the bridge interface here; with bootOrder 1 on eth0 it only
	// gives up on the pod network, after about 4.5 minutes of PXE timeouts there, hence Slow.
	It("never tries a bridge interface without bootOrder on EFI either, when another interface has one", Label(labels.EFI, labels.Certification, labels.Slow), specTimeout(), func(ctx SpecContext) {
		s := newSpec(ctx)
		mac := env.OwnMAC()
		setUpNetwork(ctx, s, env.OwnAllowList())
		boot := bootVMI(ctx, s, mac, vmNAD, firmware.EFI, vmi.WithoutBootOrder(vmi.PXEInterface), vmi.WithBootOrderOn("default", 1))

		expectNeverTried(ctx, s, boot, "OVMF", "No bootable option or device was found")
	})
})
