package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"kubevirt.io/client-go/kubecli"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvbuild "github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
)

// proofMAC is the MAC the documented procedure gives the VM's bridge interface.
const proofMAC = "de:00:00:00:00:de"

// install puts Multus and KubeVirt into the cluster and creates the node bridge on every node.
// The isolation bridge, when named, is a second bridge that nothing connects to the first.
func install(ctx context.Context, c *cluster.Cluster, o build.Options, kvm bool, out io.Writer, bridge, isolation string) error {
	p := o.Progress
	if err := p.Step("install Multus", func() error {
		_, err := multus.InstallMultus(ctx, c.REST, multus.WithLog(out))
		return err
	}); err != nil {
		return err
	}
	if err := p.Step("install KubeVirt "+kvbuild.Version, func() error {
		inst, err := kubevirt.Install(ctx, c.REST,
			kubevirt.WithOperatorManifestFile(kvbuild.ManifestPath(o)),
			kubevirt.WithEmulation(!kvm),
			kubevirt.WithProgress(out))
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

// prove starts the documented VMI on the bridge and waits for iPXE on its serial console.
func prove(ctx context.Context, c *cluster.Cluster, bridge string, out io.Writer) (err error) {
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
		c2, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	v := vmi.New("pxe-check",
		vmi.WithNamespace(ns.Name),
		vmi.WithMemory("512Mi"),
		vmi.WithInterface(vmi.MasqueradeInterface("default")),
		vmi.WithNetwork(vmi.PodNetwork()),
		vmi.WithInterface(vmi.BridgeInterface("pxe-net", vmi.WithMAC(proofMAC), vmi.WithBootOrder(1))),
		vmi.WithNetwork(vmi.MultusNetwork("pxe-net", nad.Name)),
		vmi.WithSerialBIOS(),
		vmi.WithRNG(),
		vmi.WithTerminationGracePeriod(0),
	)
	if err := vmi.Validate(v); err != nil {
		return err
	}
	created := time.Now()
	if _, err := virt.VirtualMachineInstance(ns.Name).Create(ctx, v, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create VMI %s/%s: %w", ns.Name, v.Name, err)
	}
	if _, err := kubevirt.WaitVMIRunning(ctx, virt, ns.Name, v.Name, 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster: VMI %s/%s Running %.1fs after creation\n", ns.Name, v.Name, time.Since(created).Seconds())

	stream, err := virt.VirtualMachineInstance(ns.Name).SerialConsole(v.Name, &kvcorev1.SerialConsoleOptions{ConnectionTimeout: time.Minute})
	if err != nil {
		return fmt.Errorf("serial console of %s/%s: %w", ns.Name, v.Name, err)
	}
	con, err := console.New(stream.AsConn())
	if err != nil {
		return err
	}
	defer con.Close()
	wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	// The console attaches once the VMI runs, so iPXE's banner may already be gone; these two
	// lines are iPXE's own (SeaBIOS prints neither) and name the interface by its MAC.
	mac := regexp.QuoteMeta(proofMAC)
	m, err := con.Expect(wait, regexp.MustCompile(`net\d+: `+mac+` using \S+ on|Configuring \(net\d+ `+mac+`\)`), console.Named("iPXE opening the bridge interface"))
	if err != nil {
		return fmt.Errorf("VMI %s/%s: %w", ns.Name, v.Name, err)
	}
	fmt.Fprintf(out, "cluster: the VMI's serial console shows iPXE on its bridge interface (%q) %.1fs after creation (iPXE banner seen: %v)\n",
		m[0], time.Since(created).Seconds(), strings.Contains(con.Text(), "iPXE"))
	return nil
}
