package procedure

import (
	"fmt"
	"net"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

// CheckBridgeNIC asserts the documented state of the PXE interface: it carries mac and has no
// IPv4 or IPv6 address. It returns a one-line description of the interface.
func CheckBridgeNIC(ifs []guestssh.Interface, name string, mac net.HardwareAddr) (string, error) {
	nic, ok := guestssh.InterfaceByName(ifs, name)
	if !ok {
		return "", fmt.Errorf("guest has no %s (interfaces: %s)", name, ifaceNames(ifs))
	}
	if nic.MAC.String() != mac.String() {
		return "", fmt.Errorf("%s has MAC %s, want %s", name, nic.MAC, mac)
	}
	if len(nic.IPv4) > 0 || len(nic.IPv6) > 0 {
		return "", fmt.Errorf("%s has addresses %v %v, want none", name, nic.IPv4, nic.IPv6)
	}
	return fmt.Sprintf("%s %s, up=%v, state %s, no address", name, nic.MAC, nic.Up, nic.OperState), nil
}

// CheckPodNIC asserts that the pod-network interface got an IPv4 address, and returns it.
func CheckPodNIC(ifs []guestssh.Interface, name string) (string, error) {
	nic, ok := guestssh.InterfaceByName(ifs, name)
	if !ok {
		return "", fmt.Errorf("guest has no %s (interfaces: %s)", name, ifaceNames(ifs))
	}
	if len(nic.IPv4) == 0 {
		return "", fmt.Errorf("%s has no IPv4 address", name)
	}
	return fmt.Sprintf("%s %s", name, nic.IPv4[0]), nil
}

func ifaceNames(ifs []guestssh.Interface) string {
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	return fmt.Sprint(names)
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
