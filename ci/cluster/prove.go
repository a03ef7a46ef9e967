package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"kubevirt.io/client-go/kubecli"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvbuild "github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/framework/vmiguest"
)

// install puts Multus (and the CNI plugins the nodes lack) and KubeVirt into the cluster, as d
// says, and creates the node bridge on every node. The isolation bridge, when named, is a
// second bridge that nothing connects to the first.
func install(ctx context.Context, c *cluster.Cluster, d deployment, p *build.Progress, kvm bool, out io.Writer, bridge, isolation string) error {
	if d.cniPluginsImage != "" {
		if err := p.Step("install the CNI plugins the nodes lack", func() error {
			_, err := multus.InstallCNIPlugins(ctx, c.REST, multus.WithImage(d.cniPluginsImage), multus.WithLog(out))
			return err
		}); err != nil {
			return err
		}
	}
	if err := p.Step("install Multus", func() error {
		_, err := multus.InstallMultus(ctx, c.REST, append(d.multus, multus.WithLog(out))...)
		return err
	}); err != nil {
		return err
	}
	if err := p.Step("install KubeVirt "+kvbuild.Version, func() error {
		inst, err := kubevirt.Install(ctx, c.REST, append(d.kubevirt,
			kubevirt.WithEmulation(!kvm),
			kubevirt.WithProgress(out))...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "cluster: KubeVirt %s Available %s after the manifest was applied; emulation: %v (%s)\n",
			inst.Version, inst.AvailableAfter.Round(time.Second), inst.Emulation, inst.EmulationReason)
		return nil
	}); err != nil {
		return err
	}
	for _, br := range []string{bridge, isolation} {
		if br == "" {
			continue
		}
		if err := p.Step("create node bridge "+br, func() error {
			for _, n := range c.Nodes {
				b, err := network.EnsureBridge(ctx, c, n, br)
				if err != nil {
					return err
				}
				for _, f := range b.Findings {
					fmt.Fprintln(out, "cluster:", f)
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// prove starts the documented VMI (vmi.PXEClient) on the bridge, as the suite does, and waits
// for iPXE to open its bridge interface on the serial console, with the suite's bounds (to).
func prove(ctx context.Context, c *cluster.Cluster, bridge string, to settings.Timeouts, out io.Writer) (err error) {
	kube, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		return err
	}
	virt, err := kubecli.GetKubevirtClientFromRESTConfig(c.REST)
	if err != nil {
		return err
	}
	nads, err := nadclient.NewForConfig(c.REST)
	if err != nil {
		return err
	}
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pxec-cluster-check-"}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create proof namespace: %w", err)
	}
	defer func() {
		c2, cancel := context.WithTimeout(context.Background(), to.Cleanup)
		defer cancel()
		if derr := kube.CoreV1().Namespaces().Delete(c2, ns.Name, metav1.DeleteOptions{}); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete proof namespace %s: %w", ns.Name, derr))
		}
	}()

	nad, err := network.BridgeNAD("pxe-net", ns.Name, bridge)
	if err != nil {
		return err
	}
	if _, err := nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns.Name).Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create NetworkAttachmentDefinition %s/%s: %w", ns.Name, nad.Name, err)
	}
	mac := settings.DefaultMAC
	v := vmi.PXEClient("pxe-check", mac, nad.Name, firmware.BIOS, vmi.WithNamespace(ns.Name))
	if err := vmi.Validate(v); err != nil {
		return err
	}
	timings := &procedure.Timings{}
	g, err := vmiguest.Start(ctx, virt, v, vmiguest.Config{Timeouts: to, Timings: timings})
	if g != nil {
		defer g.Close()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster: VMI %s/%s Running %s after creation\n", ns.Name, v.Name, timings)
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	b := procedure.Boot{Target: g, MAC: hw, Firmware: firmware.BIOS, Timeouts: to, Timings: timings}
	line, err := b.WaitIPXE(ctx)
	if err != nil {
		return fmt.Errorf("VMI %s/%s: %w", ns.Name, v.Name, err)
	}
	fmt.Fprintf(out, "cluster: the VMI's serial console shows iPXE on its bridge interface (%q): %s after creation\n", line, timings)
	return nil
}
