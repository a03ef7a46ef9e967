package vmi

import (
	"errors"
	"fmt"
	"net"
	"strings"

	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	v1 "kubevirt.io/api/core/v1"
)

// Validate checks that v is a VMI a PXE spec can boot: a name, a positive memory size, unique
// interfaces each with a network of the same name (and the reverse), MACs that are unicast
// EUI-48 addresses, and a boot order on exactly one device, the PXE interface, which has the
// bridge binding, a Multus network and a MAC (the PXE server knows clients by MAC), and one
// firmware without secure boot. The error joins every problem found, each naming the field path
// and its value.
func Validate(v *v1.VirtualMachineInstance) error {
	return validate(v, true)
}

// ValidateNoBootOrder checks v as Validate does, except that no device may have a boot order:
// the VMI of a spec that shows a NIC without boot order is never tried.
func ValidateNoBootOrder(v *v1.VirtualMachineInstance) error {
	return validate(v, false)
}

func validate(v *v1.VirtualMachineInstance, wantPXE bool) error {
	if v == nil {
		return errors.New("vmi: nil VirtualMachineInstance")
	}
	var errs []error
	errs = append(errs, checkName(v)...)
	errs = append(errs, checkMemory(v)...)
	errs = append(errs, checkFirmware(v)...)
	errs = append(errs, checkNetworks(v)...)
	errs = append(errs, checkBootOrder(v, wantPXE)...)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("vmi %s/%s: %w", v.Namespace, v.Name, errors.Join(errs...))
}

// problem formats one finding the way every Validate error reads: field path, quoted value,
// what is wrong.
func problem(path *field.Path, value any, format string, args ...any) error {
	return fmt.Errorf("%s %s: %s", path, quote(value), fmt.Sprintf(format, args...))
}

func quote(value any) string {
	switch x := value.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case *uint:
		if x == nil {
			return "<unset>"
		}
		return fmt.Sprint(*x)
	case *bool:
		if x == nil {
			return "<unset>"
		}
		return fmt.Sprint(*x)
	default:
		return fmt.Sprint(x)
	}
}

func checkName(v *v1.VirtualMachineInstance) []error {
	path := field.NewPath("metadata", "name")
	if msgs := validation.IsDNS1123Subdomain(v.Name); len(msgs) > 0 {
		return []error{problem(path, v.Name, "not a DNS-1123 subdomain: %s", strings.Join(msgs, "; "))}
	}
	return nil
}

func checkMemory(v *v1.VirtualMachineInstance) []error {
	path := field.NewPath("spec", "domain", "resources", "requests", "memory")
	if s, ok := v.Annotations[unparsedMemoryAnnotation]; ok {
		return []error{problem(path, s, "not a quantity (such as 512Mi)")}
	}
	q, ok := v.Spec.Domain.Resources.Requests[k8sv1.ResourceMemory]
	if !ok {
		return []error{problem(path, "", "not set: the guest needs memory for the kernel and initramfs")}
	}
	if q.Sign() <= 0 {
		return []error{problem(path, q.String(), "must be positive")}
	}
	return nil
}

func checkFirmware(v *v1.VirtualMachineInstance) []error {
	if v.Spec.Domain.Firmware == nil || v.Spec.Domain.Firmware.Bootloader == nil {
		return nil
	}
	path := field.NewPath("spec", "domain", "firmware", "bootloader")
	bl := v.Spec.Domain.Firmware.Bootloader
	var errs []error
	if bl.BIOS != nil && bl.EFI != nil {
		errs = append(errs, problem(path, "bios+efi", "BIOS and EFI are mutually exclusive"))
	}
	if bl.EFI != nil && (bl.EFI.SecureBoot == nil || *bl.EFI.SecureBoot) {
		// KubeVirt turns secure boot on when the field is unset.
		errs = append(errs, problem(path.Child("efi", "secureBoot"), bl.EFI.SecureBoot,
			"secure boot refuses the unsigned iPXE ROM: set it to false"))
	}
	return errs
}

func checkNetworks(v *v1.VirtualMachineInstance) []error {
	ifacesPath := field.NewPath("spec", "domain", "devices", "interfaces")
	netsPath := field.NewPath("spec", "networks")
	var errs []error

	networks := map[string]v1.Network{}
	for i, n := range v.Spec.Networks {
		p := netsPath.Index(i)
		switch {
		case n.Name == "":
			errs = append(errs, problem(p.Child("name"), n.Name, "must not be empty"))
		case hasKey(networks, n.Name):
			errs = append(errs, problem(p.Child("name"), n.Name, "used by another network"))
		default:
			networks[n.Name] = n
		}
		if n.Multus != nil && n.Multus.NetworkName == "" {
			errs = append(errs, problem(p.Child("multus", "networkName"), n.Multus.NetworkName, "must name a NetworkAttachmentDefinition"))
		}
	}

	ifaces := map[string]bool{}
	for i, iface := range v.Spec.Domain.Devices.Interfaces {
		p := ifacesPath.Index(i)
		switch {
		case iface.Name == "":
			errs = append(errs, problem(p.Child("name"), iface.Name, "must not be empty"))
		case ifaces[iface.Name]:
			errs = append(errs, problem(p.Child("name"), iface.Name, "used by another interface"))
		default:
			ifaces[iface.Name] = true
		}
		n, ok := networks[iface.Name]
		if iface.Name != "" && !ok {
			errs = append(errs, problem(p.Child("name"), iface.Name, "no network in spec.networks has this name"))
		}
		if iface.Masquerade != nil && ok && n.Pod == nil {
			errs = append(errs, problem(p.Child("masquerade"), iface.Name, "the masquerade binding works only on the pod network"))
		}
		if iface.MacAddress != "" {
			if err := checkMAC(iface.MacAddress); err != nil {
				errs = append(errs, problem(p.Child("macAddress"), iface.MacAddress, "%v", err))
			}
		}
	}
	for i, n := range v.Spec.Networks {
		if n.Name != "" && !ifaces[n.Name] {
			errs = append(errs, problem(netsPath.Index(i).Child("name"), n.Name, "no interface has this name"))
		}
	}
	return errs
}

// checkMAC accepts what KubeVirt accepts (net.ParseMAC) as long as it is an EUI-48 unicast
// address: a multicast source MAC is dropped by every bridge and DHCP server.
func checkMAC(mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return errors.New("not a MAC")
	}
	if len(hw) != 6 {
		return fmt.Errorf("not an EUI-48 MAC (%d octets)", len(hw))
	}
	if hw[0]&1 != 0 {
		return errors.New("a multicast MAC (bit 0 of the first octet is set)")
	}
	return nil
}

func checkBootOrder(v *v1.VirtualMachineInstance, wantPXE bool) []error {
	ifacesPath := field.NewPath("spec", "domain", "devices", "interfaces")
	var errs []error
	// Boot order is global across disks and interfaces; a diskless PXE client has no disk in it.
	for i, d := range v.Spec.Domain.Devices.Disks {
		if d.BootOrder != nil {
			errs = append(errs, problem(field.NewPath("spec", "domain", "devices", "disks").Index(i).Child("bootOrder"), d.BootOrder,
				"only the PXE interface may have a boot order"))
		}
	}
	var booting []int
	for i, iface := range v.Spec.Domain.Devices.Interfaces {
		if iface.BootOrder != nil {
			booting = append(booting, i)
		}
	}
	if !wantPXE {
		for _, i := range booting {
			errs = append(errs, problem(ifacesPath.Index(i).Child("bootOrder"), v.Spec.Domain.Devices.Interfaces[i].BootOrder,
				"no interface may have a boot order here"))
		}
		return errs
	}
	switch len(booting) {
	case 0:
		return append(errs, problem(ifacesPath, names(v.Spec.Domain.Devices.Interfaces),
			"no interface has a boot order: the PXE interface needs one, or it never gets a boot ROM"))
	case 1:
	default:
		for _, i := range booting[1:] {
			errs = append(errs, problem(ifacesPath.Index(i).Child("bootOrder"), v.Spec.Domain.Devices.Interfaces[i].BootOrder,
				"only the PXE interface may have a boot order, and %s has one", ifacesPath.Index(booting[0])))
		}
		return errs
	}

	i := booting[0]
	iface := v.Spec.Domain.Devices.Interfaces[i]
	p := ifacesPath.Index(i)
	if *iface.BootOrder == 0 {
		errs = append(errs, problem(p.Child("bootOrder"), iface.BootOrder, "must be at least 1"))
	}
	if iface.Bridge == nil {
		errs = append(errs, problem(p, iface.Name, "the PXE interface needs the bridge binding: PXE on the pod network is not supported"))
	}
	if n, ok := network(v, iface.Name); ok && n.Multus == nil {
		errs = append(errs, problem(p.Child("name"), iface.Name, "the PXE interface's network must be a Multus network on the PXE server's bridge"))
	}
	if iface.MacAddress == "" {
		errs = append(errs, problem(p.Child("macAddress"), iface.MacAddress, "the PXE interface needs the MAC the PXE server expects"))
	}
	return errs
}

func network(v *v1.VirtualMachineInstance, name string) (v1.Network, bool) {
	for _, n := range v.Spec.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return v1.Network{}, false
}

func names(ifaces []v1.Interface) string {
	s := make([]string, len(ifaces))
	for i, iface := range ifaces {
		s[i] = iface.Name
	}
	return "[" + strings.Join(s, " ") + "]"
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}
