package vmi

import (
	"strings"
	"testing"

	v1 "kubevirt.io/api/core/v1"
)

// scenario is the documented PXE client (REFERENCE §1): eth0 masquerade on the pod network,
// eth1 bridge on the PXE network with the MAC and boot order 1, serial BIOS.
func scenario(extra ...Option) *v1.VirtualMachineInstance {
	opts := []Option{
		WithNamespace("pxec-test"),
		WithMemory("512Mi"),
		WithSerialBIOS(),
		WithInterface(MasqueradeInterface("default")),
		WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"), WithBootOrder(1))),
		WithNetwork(PodNetwork()),
		WithNetwork(MultusNetwork("pxe-net", "pxe-net-conf")),
	}
	return New("pxe-client", append(opts, extra...)...)
}

// pxeIface returns the scenario's PXE interface for a case to change.
func pxeIface(v *v1.VirtualMachineInstance) *v1.Interface {
	return &v.Spec.Domain.Devices.Interfaces[1]
}

func TestValidateNamesFieldAndValue(t *testing.T) {
	uintp := func(u uint) *uint { return &u }
	tests := []struct {
		name   string
		vmi    *v1.VirtualMachineInstance
		change func(v *v1.VirtualMachineInstance)
		want   []string // each must be a line of the error; none means valid
	}{
		{name: "documented BIOS scenario is valid", vmi: scenario()},
		{name: "EFI without secure boot is valid", vmi: New("pxe-client", WithMemory("512Mi"), WithEFI(false),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"), WithBootOrder(1))),
			WithNetwork(MultusNetwork("pxe-net", "pxe-net-conf")))},
		{name: "the extras a spec adds are valid", vmi: scenario(WithRNG(), WithAutoattachGraphicsDevice(true),
			WithTerminationGracePeriod(0), WithNodeSelector("kubernetes.io/hostname", "kind-worker"), WithLabel("app", "pxec"))},
		{name: "uppercase dash-separated MAC is valid, as in KubeVirt", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			pxeIface(v).MacAddress = "DE-00-00-00-00-DE"
		}},
		{name: "malformed MAC", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).MacAddress = "de:00:zz" },
			want: []string{`spec.domain.devices.interfaces[1].macAddress "de:00:zz": not a MAC`}},
		{name: "multicast MAC", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).MacAddress = "01:00:5e:00:00:01" },
			want: []string{`spec.domain.devices.interfaces[1].macAddress "01:00:5e:00:00:01": a multicast MAC (bit 0 of the first octet is set)`}},
		{name: "EUI-64 MAC", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).MacAddress = "02:00:00:00:00:00:00:01" },
			want: []string{`spec.domain.devices.interfaces[1].macAddress "02:00:00:00:00:00:00:01": not an EUI-48 MAC (8 octets)`}},
		{name: "malformed MAC on a non-PXE interface", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Interfaces[0].MacAddress = "nope"
		}, want: []string{`spec.domain.devices.interfaces[0].macAddress "nope": not a MAC`}},
		{name: "PXE interface without MAC", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).MacAddress = "" },
			want: []string{`spec.domain.devices.interfaces[1].macAddress "": the PXE interface needs the MAC the PXE server expects`}},
		{name: "no boot order anywhere", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).BootOrder = nil },
			want: []string{`spec.domain.devices.interfaces "[default pxe-net]": no interface has a boot order: the PXE interface needs one, or it never gets a boot ROM`}},
		{name: "boot order on two interfaces", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Interfaces[0].BootOrder = uintp(2)
		}, want: []string{`spec.domain.devices.interfaces[1].bootOrder 1: only the PXE interface may have a boot order, and spec.domain.devices.interfaces[0] has one`}},
		{name: "boot order on the pod network interface only", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Interfaces[0].BootOrder = uintp(1)
			pxeIface(v).BootOrder = nil
		}, want: []string{
			`spec.domain.devices.interfaces[0] "default": the PXE interface needs the bridge binding: PXE on the pod network is not supported`,
			`spec.domain.devices.interfaces[0].name "default": the PXE interface's network must be a Multus network on the PXE server's bridge`,
			`spec.domain.devices.interfaces[0].macAddress "": the PXE interface needs the MAC the PXE server expects`,
		}},
		{name: "boot order zero", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { pxeIface(v).BootOrder = uintp(0) },
			want: []string{`spec.domain.devices.interfaces[1].bootOrder 0: must be at least 1`}},
		{name: "disk with a boot order", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Disks = []v1.Disk{{Name: "root", BootOrder: uintp(2)}}
		}, want: []string{`spec.domain.devices.disks[0].bootOrder 2: only the PXE interface may have a boot order`}},
		{name: "interface without network", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { v.Spec.Networks = v.Spec.Networks[:1] },
			want: []string{`spec.domain.devices.interfaces[1].name "pxe-net": no network in spec.networks has this name`}},
		{name: "network without interface", vmi: scenario(WithNetwork(MultusNetwork("spare", "spare-conf"))),
			want: []string{`spec.networks[2].name "spare": no interface has this name`}},
		{name: "two interfaces with one name", vmi: scenario(WithInterface(BridgeInterface("pxe-net"))),
			want: []string{`spec.domain.devices.interfaces[2].name "pxe-net": used by another interface`}},
		{name: "two networks with one name", vmi: scenario(WithNetwork(MultusNetwork("pxe-net", "other"))),
			want: []string{`spec.networks[2].name "pxe-net": used by another network`}},
		{name: "interface without name", vmi: scenario(WithInterface(BridgeInterface(""))),
			want: []string{`spec.domain.devices.interfaces[2].name "": must not be empty`}},
		{name: "multus network without NAD", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { v.Spec.Networks[1].Multus.NetworkName = "" },
			want: []string{`spec.networks[1].multus.networkName "": must name a NetworkAttachmentDefinition`}},
		{name: "masquerade on a multus network", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Networks[0] = MultusNetwork("default", "some-conf")
		}, want: []string{`spec.domain.devices.interfaces[0].masquerade "default": the masquerade binding works only on the pod network`}},
		{name: "unparsable memory", vmi: scenario(WithMemory("512MB")),
			want: []string{`spec.domain.resources.requests.memory "512MB": not a quantity (such as 512Mi)`}},
		{name: "no memory", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { v.Spec.Domain.Resources.Requests = nil },
			want: []string{`spec.domain.resources.requests.memory "": not set: the guest needs memory for the kernel and initramfs`}},
		{name: "zero memory", vmi: scenario(WithMemory("0")),
			want: []string{`spec.domain.resources.requests.memory "0": must be positive`}},
		{name: "BIOS and EFI", vmi: scenario(WithEFI(false)),
			want: []string{`spec.domain.firmware.bootloader "bios+efi": BIOS and EFI are mutually exclusive`}},
		{name: "EFI secure boot", vmi: New("pxe-client", WithMemory("512Mi"), WithEFI(true),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"), WithBootOrder(1))),
			WithNetwork(MultusNetwork("pxe-net", "pxe-net-conf"))),
			want: []string{`spec.domain.firmware.bootloader.efi.secureBoot true: secure boot refuses the unsigned iPXE ROM: set it to false`}},
		{name: "EFI with secure boot unset, which KubeVirt turns on", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Firmware.Bootloader = &v1.Bootloader{EFI: &v1.EFI{}}
		}, want: []string{`spec.domain.firmware.bootloader.efi.secureBoot <unset>: secure boot refuses the unsigned iPXE ROM: set it to false`}},
		{name: "bad name", vmi: scenario(), change: func(v *v1.VirtualMachineInstance) { v.Name = "PXE_Client" },
			want: []string{`metadata.name "PXE_Client": not a DNS-1123 subdomain`}},
		{name: "every problem is reported at once", vmi: scenario(WithMemory("x")), change: func(v *v1.VirtualMachineInstance) {
			pxeIface(v).MacAddress = "bad"
		}, want: []string{
			`spec.domain.resources.requests.memory "x": not a quantity (such as 512Mi)`,
			`spec.domain.devices.interfaces[1].macAddress "bad": not a MAC`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.change != nil {
				tt.change(tt.vmi)
			}
			checkErrorLines(t, Validate(tt.vmi), tt.want)
		})
	}
}

func TestValidateNoBootOrderRefusesAnyBootOrder(t *testing.T) {
	tests := []struct {
		name string
		vmi  *v1.VirtualMachineInstance
		want []string
	}{
		{name: "PXE interface without boot order is valid", vmi: New("no-boot-order", WithMemory("512Mi"), WithSerialBIOS(),
			WithInterface(MasqueradeInterface("default")),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"))),
			WithNetwork(PodNetwork()), WithNetwork(MultusNetwork("pxe-net", "pxe-net-conf")))},
		{name: "boot order on the PXE interface", vmi: scenario(),
			want: []string{`spec.domain.devices.interfaces[1].bootOrder 1: no interface may have a boot order here`}},
		{name: "the other checks still apply", vmi: New("no-boot-order", WithMemory("512Mi"),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00")))),
			want: []string{
				`spec.domain.devices.interfaces[0].name "pxe-net": no network in spec.networks has this name`,
				`spec.domain.devices.interfaces[0].macAddress "de:00": not a MAC`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrorLines(t, ValidateNoBootOrder(tt.vmi), tt.want)
		})
	}
}

func TestValidateRefusesNil(t *testing.T) {
	if err := Validate(nil); err == nil {
		t.Error("Validate(nil) = nil, want an error")
	}
}

// checkErrorLines wants err to hold exactly the lines want (each line of err after the
// "vmi ns/name: " prefix must start with one of them, in order) or, with want empty, no error.
func checkErrorLines(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("error = %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("error = nil, want %q", want)
	}
	msg := err.Error()
	_, rest, ok := strings.Cut(msg, ": ")
	if !ok || !strings.HasPrefix(msg, "vmi ") {
		t.Fatalf("error %q does not start with \"vmi <namespace>/<name>: \"", msg)
	}
	got := strings.Split(rest, "\n")
	if len(got) != len(want) {
		t.Fatalf("error has %d problems, want %d:\n%s", len(got), len(want), msg)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}
