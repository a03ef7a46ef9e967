package e2e

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kvv1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/pxepod"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/framework/vmiguest"
)

// Spec is one spec's namespace and everything the spec creates in it.
type Spec struct {
	env *Env
	// Name is the spec's text, for labels and messages.
	Name string
	// Namespace holds everything the spec creates.
	Namespace string
	// PXE is the spec's PXE server, once deployed.
	PXE *pxepod.Server
	// Guest is the spec's VMI with its serial console, once started.
	Guest *vmiguest.Guest
	// Screenshot is the boot screen, once captured.
	Screenshot *image.RGBA
	// Timings records the procedure's milestones.
	Timings *procedure.Timings
}

// NewSpec creates the spec's namespace (<prefix>-<random>, labelled with the spec).
func (e *Env) NewSpec(ctx context.Context, name string) (*Spec, error) {
	ns, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: e.Config.NamespaceGenerateName(),
		Labels:       namespaceLabels(labelValue(name)),
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create the spec's namespace: %w", err)
	}
	e.remember(ns.Name)
	return &Spec{env: e, Name: name, Namespace: ns.Name, Timings: &procedure.Timings{}}, nil
}

// labelValue squeezes a spec's text into a label value (63 characters of [a-z0-9-._]).
func labelValue(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
		}
	}
	v := strings.Trim(b.String(), "-")
	if len(v) > 63 {
		v = strings.Trim(v[:63], "-")
	}
	return v
}

// Delete removes the spec's guest and PXE server and waits until both are gone, so that the next
// spec never shares the bridge with them, then starts the namespace's deletion without waiting
// for it: Env.Finish waits for every spec's namespace once, at the end of the run. It runs to
// Timeouts.Cleanup even when ctx is cancelled (an interrupted run must not leak).
func (s *Spec) Delete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.env.Config.Timeouts.Cleanup)
	defer cancel()
	var errs []error
	if s.Guest != nil {
		errs = append(errs, s.Guest.Delete(ctx))
	}
	if s.PXE != nil {
		errs = append(errs, s.PXE.Delete(ctx))
	}
	errs = append(errs, s.env.deleteLater(ctx, s.Namespace))
	return errors.Join(errs...)
}

// CreateNAD creates a bridge NetworkAttachmentDefinition without IPAM for bridge (and VLAN,
// 0 for none) in the spec's namespace: the VM's attachment.
func (s *Spec) CreateNAD(ctx context.Context, name, bridge string, vlan int, opts ...network.NADOption) error {
	if vlan != 0 {
		opts = append([]network.NADOption{network.WithVLAN(vlan)}, opts...)
	}
	nad, err := network.BridgeNAD(name, s.Namespace, bridge, opts...)
	if err != nil {
		return err
	}
	if _, err := s.env.NADs.K8sCniCncfIoV1().NetworkAttachmentDefinitions(s.Namespace).Create(ctx, nad, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create NetworkAttachmentDefinition %s/%s: %w", s.Namespace, name, err)
	}
	return nil
}

// Cmdline is the guest kernel command line the PXE server hands out.
func (s *Spec) Cmdline() string {
	return bootimage.Cmdline(s.env.Keys.AuthorizedKeyBase64(), s.env.Password)
}

// ServerOption changes the PXE server DeployPXEServer deploys.
type ServerOption interface {
	applyServer(*pxepod.Config)
}

type serverOptionFunc func(*pxepod.Config)

func (f serverOptionFunc) applyServer(c *pxepod.Config) { f(c) }

// WithCrashAfter makes the server crash on purpose at point (pxe.Config.CrashAfter's test
// hook), for the fault specs: its pod then stays behind, exited, with its log.
func WithCrashAfter(point pxe.CrashPoint) ServerOption {
	return serverOptionFunc(func(c *pxepod.Config) { c.CrashAfter = point })
}

// DeployPXEServer puts the PXE server on the network of the NetworkAttachmentDefinition nad
// (which CreateServerNAD made), with allowed on its allow-list.
func (s *Spec) DeployPXEServer(ctx context.Context, nad string, allowed []string, opts ...ServerOption) (*pxepod.Server, error) {
	var res []pxe.Reservation
	for i, m := range allowed {
		hw, err := net.ParseMAC(m)
		if err != nil {
			return nil, fmt.Errorf("allow-list entry %q: %w", m, err)
		}
		ip := s.env.clientAddress()
		for range i {
			ip = ip.Next()
		}
		res = append(res, pxe.Reservation{MAC: hw, IP: ip, Hostname: "pxec-guest"})
	}
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.PXEServer)
	defer cancel()
	c := pxepod.Config{
		Namespace: s.Namespace, Image: s.env.Config.Images.PXEServer, NetworkAttachment: nad,
		Address: s.env.serverAddress(), Reservations: res, Payload: s.env.ServerPayload,
		Kernel: bootimage.KernelFile, Initrd: bootimage.InitrdFile, Cmdline: s.Cmdline(),
		RouterAdvertisements: true,
	}
	for _, o := range opts {
		o.applyServer(&c)
	}
	srv, err := pxepod.Deploy(ctx, s.env.Kube, s.env.REST, c)
	if err != nil {
		return nil, err
	}
	s.PXE = srv
	return srv, nil
}

// CreateServerNAD creates the PXE server's attachment: bridge and VLAN as the VM's, with the
// server's fixed address.
func (s *Spec) CreateServerNAD(ctx context.Context, name, bridge string, vlan int) error {
	return s.CreateNAD(ctx, name, bridge, vlan, network.WithStaticIP(s.env.serverAddress().String()))
}

// StartVMI creates v in the spec's namespace and starts it as the procedure's guest (paused,
// console attached, unpaused, boot menu answered), booting from the spec's PXE server when
// one runs. Build v with vmi.PXEClient: the documented VMI.
func (s *Spec) StartVMI(ctx context.Context, v *kvv1.VirtualMachineInstance) error {
	v = v.DeepCopy()
	v.Namespace = s.Namespace
	c := vmiguest.Config{Timeouts: s.env.Config.Timeouts, Timings: s.Timings}
	if s.PXE != nil {
		c.Server = s.PXE
	}
	g, err := vmiguest.Start(ctx, s.env.Virt, v, c)
	if g != nil {
		s.Guest = g
	}
	return err
}

// Boot is the documented procedure for the guest's bridge interface mac, on the spec's guest
// and PXE server, bounded by the run's timeouts. When the server hears none of the guest's
// DHCP, the procedure asks the node they run on what drops it (nodePath).
func (s *Spec) Boot(mac string) (*procedure.Boot, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return nil, fmt.Errorf("boot MAC %q: %w", mac, err)
	}
	if s.Guest == nil {
		return nil, errors.New("boot: no VMI was started (StartVMI)")
	}
	b := &procedure.Boot{Target: s.Guest, MAC: hw, Firmware: vmi.FirmwareOf(s.Guest.VMI),
		Timeouts: s.env.Config.Timeouts, Timings: s.Timings}
	if node := s.NodeOf(); node != "" && s.env.NodeHost != nil {
		b.Path = nodePath{runner: s.env.NodeHost, node: node, bridge: s.env.Config.Bridge}
	}
	return b, nil
}

// nodePath is the PXE bridge on the node where a spec's guest and PXE server run (the guest is
// pinned to the server's node): what may drop the guest's DHCP there is the node's firewall.
type nodePath struct {
	runner       nodeexec.Runner
	node, bridge string
}

// Drops reads the node's bridge netfilter setting and iptables FORWARD rules.
func (p nodePath) Drops(ctx context.Context) (string, error) {
	return network.BridgedDHCPDrops(ctx, p.runner, p.node, p.bridge)
}

// SSH logs in to the guest over KubeVirt's port-forward, pinning the host key.
func (s *Spec) SSH(ctx context.Context, b *procedure.Boot, hostKeyFingerprint string) (*guestssh.Client, error) {
	return b.SSH(ctx, s.env.Keys, hostKeyFingerprint, s.Namespace+"/"+s.Guest.VMI.Name)
}

// Login logs in as root on the guest's serial console with the run's password.
func (s *Spec) Login(ctx context.Context, b *procedure.Boot) (string, error) {
	return b.Login(ctx, s.env.Password)
}

// NodeOf returns the node the PXE server runs on.
func (s *Spec) NodeOf() string {
	if s.PXE == nil {
		return ""
	}
	return s.PXE.Node
}
