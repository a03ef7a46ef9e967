package e2e

import (
	"context"
	"errors"
	"fmt"
	"image"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kvv1 "kubevirt.io/api/core/v1"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/pxepod"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// The PXE network every spec creates on its bridge: the server at .1, the VM's reservation at .10.
var (
	serverAddress = netip.MustParsePrefix("192.168.100.1/24")
	clientAddress = netip.MustParseAddr("192.168.100.10")
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
	// VMI is the spec's VMI as created.
	VMI *kvv1.VirtualMachineInstance
	// Console is the VMI's serial console, attached before the guest runs its first instruction.
	Console *console.Console
	// Screenshot is the boot screen captured over VNC.
	Screenshot *image.RGBA
	// Timings records the procedure's milestones.
	Timings *Timings

	fw firmware.Firmware // the VMI's firmware
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
	return &Spec{env: e, Name: name, Namespace: ns.Name, Timings: &Timings{}}, nil
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

// Delete removes the spec's namespace with everything in it and waits until it is gone.
func (s *Spec) Delete(ctx context.Context) error {
	if s.Console != nil {
		s.Console.Close()
	}
	return deleteNamespace(ctx, s.env.Kube, s.Namespace, s.env.Config.Timeouts.Cleanup)
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

// DeployPXEServer puts the PXE server on the network of the NetworkAttachmentDefinition nad
// (which CreateServerNAD made), with allowed on its allow-list.
func (s *Spec) DeployPXEServer(ctx context.Context, nad string, allowed []string) (*pxepod.Server, error) {
	var res []pxe.Reservation
	for i, m := range allowed {
		hw, err := net.ParseMAC(m)
		if err != nil {
			return nil, fmt.Errorf("allow-list entry %q: %w", m, err)
		}
		ip := clientAddress
		for range i {
			ip = ip.Next()
		}
		res = append(res, pxe.Reservation{MAC: hw, IP: ip, Hostname: "pxec-guest"})
	}
	p := s.env.Payload
	srv, err := pxepod.Deploy(ctx, s.env.Kube, s.env.REST, pxepod.Config{
		Namespace: s.Namespace, Image: s.env.Config.Images.PXEServer, NetworkAttachment: nad,
		Address: serverAddress, Reservations: res,
		Files: map[string]string{
			bootimage.KernelFile: p.Kernel, bootimage.InitrdFile: p.Initrd,
			pxe.BIOSLoader: p.Undionly, pxe.EFILoader: p.IPXEEFI,
		},
		Kernel: bootimage.KernelFile, Initrd: bootimage.InitrdFile, Cmdline: s.Cmdline(),
		RouterAdvertisements: true,
	})
	if err != nil {
		return nil, err
	}
	s.PXE = srv
	return srv, nil
}

// CreateServerNAD creates the PXE server's attachment: bridge and VLAN as the VM's, with the
// server's fixed address.
func (s *Spec) CreateServerNAD(ctx context.Context, name, bridge string, vlan int) error {
	return s.CreateNAD(ctx, name, bridge, vlan, network.WithStaticIP(serverAddress.String()))
}

// VMIConfig shapes the spec's VMI.
type VMIConfig struct {
	// MAC of the bridge interface.
	MAC string
	// NAD is the bridge interface's NetworkAttachmentDefinition.
	NAD string
	// Firmware is BIOS (SeaBIOS, serial output) or EFI (OVMF, no secure boot).
	Firmware firmware.Firmware
	// NoBootOrder leaves the bridge interface without bootOrder (the negative case).
	NoBootOrder bool
	// Node pins the VMI to a node (the PXE server's, where the bridges are not connected
	// across nodes); empty lets the scheduler choose.
	Node string
}

// CreateVMI creates the documented VMI, started paused so that the serial console attaches
// before the firmware's first word (WaitRunning unpauses it). An attach to a VMI already
// running was tried: once in five it gave a stream that stayed silent for minutes.
func (s *Spec) CreateVMI(ctx context.Context, c VMIConfig) error {
	bridgeOpts := []vmi.InterfaceOption{vmi.WithMAC(c.MAC)}
	if !c.NoBootOrder {
		bridgeOpts = append(bridgeOpts, vmi.WithBootOrder(1))
	}
	opts := []vmi.Option{
		vmi.WithNamespace(s.Namespace),
		vmi.WithMemory("512Mi"),
		vmi.WithInterface(vmi.MasqueradeInterface("default")),
		vmi.WithNetwork(vmi.PodNetwork()),
		vmi.WithInterface(vmi.BridgeInterface("pxe-net", bridgeOpts...)),
		vmi.WithNetwork(vmi.MultusNetwork("pxe-net", c.NAD)),
		vmi.WithRNG(),
		vmi.WithTerminationGracePeriod(0),
	}
	switch c.Firmware {
	case firmware.EFI:
		opts = append(opts, vmi.WithEFI(false))
	default:
		opts = append(opts, vmi.WithSerialBIOS())
	}
	if c.Node != "" {
		opts = append(opts, vmi.WithNodeSelector(corev1.LabelHostname, c.Node))
	}
	v := vmi.New("pxe-guest", opts...)
	validate := vmi.Validate
	if c.NoBootOrder {
		validate = vmi.ValidateNoBootOrder
	}
	if err := validate(v); err != nil {
		return err
	}
	paused := kvv1.StartStrategyPaused
	v.Spec.StartStrategy = &paused
	s.fw = c.Firmware
	s.Timings.Start()
	created, err := s.env.Virt.VirtualMachineInstance(s.Namespace).Create(ctx, v, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create VMI %s/%s: %w", s.Namespace, v.Name, err)
	}
	s.VMI = created
	return nil
}

// WaitRunning waits for the VMI to run (paused), attaches the serial console and unpauses it.
// KubeVirt gives a VMI that starts paused a 10 s firmware boot menu; WaitRunning answers it
// with Enter over the serial console (SeaBIOS's prompt; OVMF's continue key), which boots on
// at once.
func (s *Spec) WaitRunning(ctx context.Context) error {
	vmis := s.env.Virt.VirtualMachineInstance(s.Namespace)
	if _, err := kubevirt.WaitVMIRunning(ctx, s.env.Virt, s.Namespace, s.VMI.Name, s.env.Config.Timeouts.VMIRunning); err != nil {
		return err
	}
	s.Timings.Mark(StepRunning)
	stream, err := vmis.SerialConsole(s.VMI.Name, &kvcorev1.SerialConsoleOptions{ConnectionTimeout: time.Minute})
	if err != nil {
		return fmt.Errorf("serial console of %s/%s: %w", s.Namespace, s.VMI.Name, err)
	}
	if s.Console, err = console.New(stream.AsConn()); err != nil {
		return err
	}
	if err := vmis.Unpause(ctx, s.VMI.Name, &kvv1.UnpauseOptions{}); err != nil {
		return fmt.Errorf("unpause VMI %s/%s: %w", s.Namespace, s.VMI.Name, err)
	}
	if s.fw == firmware.EFI {
		s.continueEFIBoot(ctx)
	} else {
		s.skipBootMenu(ctx)
	}
	return nil
}

// continueEFIBoot presses Enter, OVMF's continue key, once a second in the background until
// OVMF's boot manager starts loading a boot option ("BdsDxe: loading"), for at most 30 s: OVMF
// prints no prompt on the serial console to answer. Keys that arrive before the boot manager
// waits are discarded by it.
func (s *Spec) continueEFIBoot(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	go func() {
		defer cancel()
		for !strings.Contains(s.Console.Text(), "BdsDxe: loading") {
			if err := s.Console.Send(ctx, "\r"); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// skipBootMenu presses Enter at SeaBIOS's boot menu prompt, if one shows within a few seconds.
// It only saves time: a prompt that never shows, or a key that is ignored, leaves the boot as
// it was.
func (s *Spec) skipBootMenu(ctx context.Context) {
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Console.Expect(c, console.Phrase("Press ESC for boot menu"), console.Named("SeaBIOS's boot menu prompt")); err != nil {
		return
	}
	_ = s.Console.Send(c, "\r")
}

// macLine matches iPXE naming the NIC it opens, with its MAC.
func macLine(mac string) *regexp.Regexp {
	return regexp.MustCompile(`net\d+: ` + regexp.QuoteMeta(strings.ToLower(mac)))
}

// WaitIPXE waits for iPXE to open the bridge interface on the serial console.
func (s *Spec) WaitIPXE(ctx context.Context, mac string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.DHCP)
	defer cancel()
	m, err := s.Console.Expect(ctx, macLine(mac), console.Named("iPXE opening the bridge interface "+mac))
	if err != nil {
		return "", err
	}
	s.Timings.Mark(StepIPXE)
	return m[0], nil
}

// CaptureScreen takes a VNC screenshot once the display shows something.
func (s *Spec) CaptureScreen(ctx context.Context) (*image.RGBA, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.DHCP)
	defer cancel()
	stream, err := s.env.Virt.VirtualMachineInstance(s.Namespace).VNC(s.VMI.Name, false)
	if err != nil {
		return nil, fmt.Errorf("VNC of %s/%s: %w", s.Namespace, s.VMI.Name, err)
	}
	conn := stream.AsConn()
	defer conn.Close()
	c, err := vnc.Connect(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("VNC of %s/%s: %w", s.Namespace, s.VMI.Name, err)
	}
	defer c.Close()
	for {
		img, err := c.Capture(ctx)
		if err != nil {
			return nil, fmt.Errorf("VNC of %s/%s: %w", s.Namespace, s.VMI.Name, err)
		}
		if !vnc.IsBlank(img) {
			s.Screenshot = img
			return img, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("VNC of %s/%s: the display stayed blank: %w", s.Namespace, s.VMI.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ErrNoDHCPAnswer marks a boot that failed because the PXE server ignored the MAC.
var ErrNoDHCPAnswer = errors.New("no DHCP answer")

// noDHCPAnswer is ErrNoDHCPAnswer with the server's own explanation as its text.
type noDHCPAnswer string

func (e noDHCPAnswer) Error() string        { return string(e) }
func (e noDHCPAnswer) Is(target error) bool { return target == ErrNoDHCPAnswer }

// WaitDHCP waits for iPXE's DHCP result on the console and the PXE server's matching ACK. It
// fails fast, with ErrNoDHCPAnswer and the server's reason, once the server has ignored
// pxe.IgnoredBeforeGivingUp of the MAC's DHCP messages.
func (s *Spec) WaitDHCP(ctx context.Context, mac string) (pxe.Event, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return pxe.Event{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.DHCP)
	defer cancel()
	waitc, stopWaiting := context.WithCancelCause(ctx)
	defer stopWaiting(nil)
	go func() {
		for {
			if events, err := s.PXE.Events(waitc, mac); err == nil {
				if why, ignored := pxe.DHCPDiagnosis(mac, events); why != "" && ignored >= pxe.IgnoredBeforeGivingUp {
					stopWaiting(noDHCPAnswer(why))
					return
				}
			}
			select {
			case <-waitc.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	m, err := s.Console.Expect(waitc, regexp.MustCompile(`net\d+: (\d+\.\d+\.\d+\.\d+)/`), console.Named("iPXE's DHCP result"))
	if err != nil {
		if cause := context.Cause(waitc); errors.Is(cause, ErrNoDHCPAnswer) {
			return pxe.Event{}, cause
		}
		return pxe.Event{}, fmt.Errorf("%w; %s", err, s.dhcpDiagnosis(context.WithoutCancel(ctx), mac))
	}
	// Firmware whose PXE stack is not iPXE (OVMF's) gets an ACK of its own first, naming the
	// iPXE loader to fetch over TFTP; the address iPXE printed comes from the ACK to iPXE.
	ack, err := s.PXE.WaitFor(ctx, hw, func(e pxe.Event) bool { return e.Kind == pxe.KindDHCPAck && e.UserClass == "iPXE" })
	if err != nil {
		return pxe.Event{}, fmt.Errorf("iPXE configured %s but the PXE server logged no DHCP ACK to iPXE for %s: %w", m[1], mac, err)
	}
	if ack.IP != m[1] {
		return ack, fmt.Errorf("iPXE configured %s but the PXE server acknowledged %s", m[1], ack.IP)
	}
	s.Timings.Mark(StepDHCP)
	return ack, nil
}

// BootChain describes how the MAC reached iPXE, from the server's ACKs: "iPXE ROM" when the
// NIC's ROM was iPXE itself, or "efi PXE -> ipxe.efi over TFTP -> iPXE" when the firmware's own
// PXE stack chainloaded it.
func BootChain(events []pxe.Event) string {
	var steps []string
	for _, e := range events {
		if e.Kind != pxe.KindDHCPAck {
			continue
		}
		if e.UserClass == "iPXE" {
			if len(steps) == 0 {
				return "iPXE ROM"
			}
			return strings.Join(append(steps, "iPXE"), " -> ")
		}
		steps = append(steps, fmt.Sprintf("%s PXE -> %s over TFTP", e.Firmware, e.Path))
	}
	return strings.Join(append(steps, "no ACK to iPXE"), " -> ")
}

// dhcpDiagnosis says what the PXE server saw of mac's DHCP, for a failed wait.
func (s *Spec) dhcpDiagnosis(ctx context.Context, mac string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events, err := s.PXE.Events(ctx, mac)
	if err != nil {
		return err.Error()
	}
	if why, _ := pxe.DHCPDiagnosis(mac, events); why != "" {
		return why
	}
	return fmt.Sprintf("the PXE server did answer %s's DHCP", mac)
}

// Payload is what the server served for one boot.
type Payload struct {
	Kernel, Initrd pxe.Event
	// Nonce is the nonce of the iPXE script served to the MAC.
	Nonce string
}

// WaitPayload waits for the server to have served the script, kernel and initramfs to mac.
func (s *Spec) WaitPayload(ctx context.Context, mac string) (Payload, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return Payload{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.PXEBoot)
	defer cancel()
	var p Payload
	for _, f := range []struct {
		name string
		ev   *pxe.Event
	}{{bootimage.KernelFile, &p.Kernel}, {bootimage.InitrdFile, &p.Initrd}} {
		*f.ev, err = s.PXE.WaitFor(ctx, hw, func(e pxe.Event) bool {
			return e.Kind == pxe.KindHTTP && e.Path == "/"+f.name && e.Status == 200 && e.Reason == ""
		})
		if err != nil {
			return p, fmt.Errorf("%s not served to %s over HTTP: %w", f.name, mac, err)
		}
	}
	events, err := s.PXE.Events(ctx, mac)
	if err != nil {
		return p, err
	}
	if p.Nonce = pxe.LastScriptNonce(events); p.Nonce == "" {
		return p, fmt.Errorf("no iPXE script with a nonce was served to %s", mac)
	}
	s.Timings.Mark(StepPayload)
	return p, nil
}

// WaitReady waits for the guest's ready line and parses it.
func (s *Spec) WaitReady(ctx context.Context) (bootimage.Ready, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.GuestReady)
	defer cancel()
	m, err := s.Console.Expect(ctx, regexp.MustCompile(bootimage.ReadyPattern), console.Named("the guest's ready line"),
		console.FailOn(regexp.MustCompile(`Kernel panic|PXEC-FAIL`)))
	if err != nil {
		return bootimage.Ready{}, err
	}
	r, err := bootimage.ParseReady(m[0])
	if err != nil {
		return r, err
	}
	s.Timings.Mark(StepReady)
	return r, nil
}

// SSH logs in to the guest over KubeVirt's port-forward to its port 22, pinning the host key.
func (s *Spec) SSH(ctx context.Context, hostKeyFingerprint string) (*guestssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.SSH)
	defer cancel()
	dial := func(ctx context.Context) (net.Conn, error) {
		stream, err := s.env.Virt.VirtualMachineInstance(s.Namespace).PortForward(s.VMI.Name, 22, "tcp")
		if err != nil {
			return nil, fmt.Errorf("port-forward to %s/%s:22: %w", s.Namespace, s.VMI.Name, err)
		}
		return stream.AsConn(), nil
	}
	c, err := guestssh.Dial(ctx, dial, guestssh.Config{
		User: "root", Signer: s.env.Keys.Signer(), HostKeyFingerprint: hostKeyFingerprint,
		HostKeyAlgorithms: []string{bootimage.HostKeyAlgorithm}, Name: s.Namespace + "/" + s.VMI.Name,
		RetryInterval: 250 * time.Millisecond,
	})
	if err != nil {
		return nil, err
	}
	if _, err := c.Output(ctx, "true"); err != nil {
		c.Close()
		return nil, err
	}
	s.Timings.Mark(StepSSH)
	return c, nil
}

// Login logs in as root on the serial console and runs hostname.
func (s *Spec) Login(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.env.Config.Timeouts.ConsoleLogin)
	defer cancel()
	if err := s.Console.Login(ctx, "root", s.env.Password); err != nil {
		return "", err
	}
	out, status, err := s.Console.Run(ctx, "hostname")
	if err != nil {
		return "", err
	}
	if status != 0 {
		return "", fmt.Errorf("hostname on the console exited %d: %s", status, out)
	}
	return strings.TrimSpace(out), nil
}

// EventsFor returns the PXE server's events for mac.
func (s *Spec) EventsFor(ctx context.Context, mac string) ([]pxe.Event, error) {
	return s.PXE.Events(ctx, mac)
}

// NodeOf returns the node the PXE server runs on.
func (s *Spec) NodeOf() string {
	if s.PXE == nil {
		return ""
	}
	return s.PXE.Node
}
