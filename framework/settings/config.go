package settings

import (
	"slices"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

// Config is everything a run of the suite can be told.
type Config struct {
	// MAC is the PXE interface's MAC, the one on the PXE server's allow-list.
	MAC string `json:"mac"`
	// AllowedMACs is the PXE server's allow-list; empty means MAC alone. A run whose MAC is
	// not on it proves the suite's fail-fast path: the boot fails naming the missing DHCP answer.
	AllowedMACs []string `json:"allowedMACs"`
	// Bridge is the Linux bridge on the nodes that carries the PXE network.
	Bridge string `json:"bridge"`
	// BridgeCreate says who makes Bridge: BridgeExpected (empty), the cluster's owner before the
	// run; or BridgeByNNCP, the suite, by a NodeNetworkConfigurationPolicy (kubernetes-nmstate)
	// before the specs, removed again by the same policy with the bridge absent at the end. The
	// key is "bridge.create", beside "bridge", in files, flags and PXEC_BRIDGE_CREATE alike.
	BridgeCreate string `json:"bridge.create"`
	// IsolationBridge is a second node bridge, not connected to Bridge, for the isolation spec;
	// empty (or absent on the nodes) skips that spec with the reason.
	IsolationBridge string `json:"isolationBridge"`
	// Skip switches off optional parts a cluster lacks, as KubeVirt's SKIP_* variables do.
	Skip Skip `json:"skip"`
	// VLAN tags the PXE network on the bridge; 0 means untagged.
	VLAN int `json:"vlan"`
	// Namespace is the prefix of the namespaces specs create, as <prefix>-<random>.
	Namespace string `json:"namespace"`
	// Firmware lists the firmware the PXE specs run with, each once.
	Firmware []firmware.Firmware `json:"firmware"`
	// Kubeconfig selects an existing cluster; empty means $KUBECONFIG, and without that the
	// cluster the suite runs in as a pod, with its service account (the Sonobuoy plugin).
	Kubeconfig string `json:"kubeconfig"`
	// KeepOnFailure leaves a failed spec's namespace and objects in place for debugging.
	KeepOnFailure bool `json:"keepOnFailure"`
	// FaultInjection lets the fault specs change the nodes on purpose (take a CNI plugin away,
	// and put it back): only on a cluster the run owns, such as make e2e's. Off, they skip.
	FaultInjection bool `json:"faultInjection"`
	// ArtifactsDir receives reports and each failed spec's diagnostics.
	ArtifactsDir string `json:"artifactsDir"`
	// Images names the images the suite deploys.
	Images Images `json:"images"`
	// Timeouts bounds every wait, for a cluster with hardware virtualization.
	Timeouts Timeouts `json:"timeouts"`
	// EmulationScale multiplies Timeouts where KubeVirt emulates the CPU (no usable /dev/kvm).
	EmulationScale float64 `json:"emulationScale"`
}

// Skip switches off optional parts of the suite: their specs skip, and so do their preflight
// checks, each saying which switch did it ("skipped by skip.isolation").
type Skip struct {
	// Isolation skips the isolation spec and the isolation bridge's check.
	Isolation bool `json:"isolation"`
	// VLAN skips the VLAN spec and the nodes' VLAN probe.
	VLAN bool `json:"vlan"`
}

// Images names the container images the suite deploys.
type Images struct {
	// PXEServer runs the PXE server (DHCP, TFTP, HTTP) on the PXE network.
	PXEServer string `json:"pxeServer"`
}

// Timeouts bound every wait of a run. Each bounds one step and starts when the step before it
// ended, so a slow step cannot eat a later step's time; the local lab uses the same bounds, with
// a QEMU guest in place of the VMI. Each field's key under "timeouts" and what it bounds are in
// Fields.
type Timeouts struct {
	// VMIRunning bounds VMI creation to phase Running (lab: QEMU's start to the firmware's
	// first words on the console).
	VMIRunning time.Duration
	// BootMenu bounds the wait for the firmware's boot menu prompt after unpausing, which the
	// procedure answers to boot at once; a prompt that never shows costs this bound only.
	BootMenu time.Duration
	// IPXE bounds Running to iPXE opening the bridge interface on the serial console.
	IPXE time.Duration
	// Screenshot bounds capturing a boot screen that is not blank.
	Screenshot time.Duration
	// DHCP bounds iPXE opening the interface to the PXE server's DHCP acknowledgement.
	DHCP time.Duration
	// PXEBoot bounds the DHCP acknowledgement to kernel and initramfs served.
	PXEBoot time.Duration
	// GuestReady bounds the payload served to the guest's ready line on the console.
	GuestReady time.Duration
	// SSH bounds an SSH login to the guest, port-forward included, and each command over it.
	SSH time.Duration
	// ConsoleLogin bounds a root login on the serial console.
	ConsoleLogin time.Duration
	// PXEServer bounds the PXE server pod's creation to serving (image pull included).
	PXEServer time.Duration
	// NodeProbe bounds one command run on a node (a probe pod's whole life).
	NodeProbe time.Duration
	// Cleanup bounds the deletion of what a spec created.
	Cleanup time.Duration
	// NodeNetwork bounds one change of the nodes' network by kubernetes-nmstate: a
	// NodeNetworkConfigurationPolicy Available with every node's enactment, or the nodes'
	// NodeNetworkStates reporting the change.
	NodeNetwork time.Duration
}

// Spec is the bound of a whole spec: every step's bound in turn, with the cleanup.
func (t Timeouts) Spec() time.Duration {
	var sum time.Duration
	for _, f := range t.Fields() {
		sum += *f.Value
	}
	return sum
}

// The values of BridgeCreate.
const (
	// BridgeExpected: the bridge exists on every node before the run (preflight checks it).
	BridgeExpected = ""
	// BridgeByNNCP: the suite creates the bridge by NodeNetworkConfigurationPolicy.
	BridgeByNNCP = "nncp"
)

// DefaultMAC is the PXE interface's MAC in the documented procedure.
const DefaultMAC = "de:00:00:00:00:de"

// DefaultPXEServerImage is the image `go run ./ci/imagebuilder` builds for the PXE server.
const DefaultPXEServerImage = "pxec.local/pxe-server:dev"

// Default returns the configuration of the documented procedure on a kind cluster the suite
// creates. The timeouts leave room for image pulls and busy CI machines: under emulation here,
// a VMI ran 4.9 s after creation and answered SSH 15.3 s after it.
func Default() Config {
	return Config{
		MAC:             DefaultMAC,
		Bridge:          "br1",
		IsolationBridge: "br2",
		Namespace:       "pxec",
		Firmware:        []firmware.Firmware{firmware.BIOS, firmware.EFI},
		ArtifactsDir:    "_artifacts",
		Images:          Images{PXEServer: DefaultPXEServerImage},
		Timeouts: Timeouts{
			VMIRunning:   3 * time.Minute,
			BootMenu:     10 * time.Second,
			IPXE:         time.Minute,
			Screenshot:   time.Minute,
			DHCP:         time.Minute,
			PXEBoot:      time.Minute,
			GuestReady:   2 * time.Minute,
			SSH:          time.Minute,
			ConsoleLogin: time.Minute,
			PXEServer:    3 * time.Minute,
			NodeProbe:    2 * time.Minute,
			Cleanup:      3 * time.Minute,
			NodeNetwork:  2 * time.Minute,
		},
		EmulationScale: 3,
	}
}

// Scale returns the timeouts multiplied by factor.
func (t Timeouts) Scale(factor float64) Timeouts {
	for _, f := range t.Fields() {
		*f.Value = time.Duration(float64(*f.Value) * factor)
	}
	return t
}

// ForEmulation returns a copy of c whose timeouts are scaled by c.EmulationScale, for a cluster
// where KubeVirt emulates the CPU.
func (c Config) ForEmulation() Config {
	c.Firmware = slices.Clone(c.Firmware)
	c.AllowedMACs = slices.Clone(c.AllowedMACs)
	c.Timeouts = c.Timeouts.Scale(c.EmulationScale)
	return c
}

// AllowList returns the MACs the PXE server answers: AllowedMACs, or MAC when that is empty.
func (c Config) AllowList() []string {
	if len(c.AllowedMACs) == 0 {
		return []string{c.MAC}
	}
	return slices.Clone(c.AllowedMACs)
}

// NamespaceGenerateName is the metadata.generateName of the namespaces specs create, so that
// the API server appends the random part.
func (c Config) NamespaceGenerateName() string {
	return c.Namespace + "-"
}
