package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// CNIVersion is the CNI specification version our attachment configs declare; the bridge
// plugin, Multus and KubeVirt all accept it, and it is the version the documented procedure
// shows.
const CNIVersion = "0.3.1"

// NADOption changes the bridge attachment that BridgeNAD builds.
type NADOption interface {
	applyNAD(*bridgeConf) error
}

type nadOptionFunc func(*bridgeConf) error

func (f nadOptionFunc) applyNAD(c *bridgeConf) error { return f(c) }

// bridgeConf is the bridge plugin's configuration; the field order is the order the
// documented procedure prints, so a reader can compare the two at a glance.
type bridgeConf struct {
	CNIVersion  string      `json:"cniVersion"`
	Name        string      `json:"name"`
	Type        string      `json:"type"`
	Bridge      string      `json:"bridge"`
	VLAN        int         `json:"vlan,omitempty"`
	MACSpoofChk bool        `json:"macspoofchk"`
	IPAM        *staticIPAM `json:"ipam,omitempty"`
}

// staticIPAM is the static IPAM plugin's configuration: fixed addresses, no routes, no DNS.
type staticIPAM struct {
	Type      string          `json:"type"`
	Addresses []staticAddress `json:"addresses"`
}

type staticAddress struct {
	Address string `json:"address"`
}

// WithVLAN tags the attachment's port on the bridge with 802.1Q VLAN id (1-4094); the node's
// kernel must support VLAN filtering on bridges (see VLANSupported).
func WithVLAN(id int) NADOption {
	return nadOptionFunc(func(c *bridgeConf) error {
		if err := ValidateVLAN(id); err != nil {
			return err
		}
		c.VLAN = id
		return nil
	})
}

// WithStaticIP gives the attachment a fixed address through the static IPAM plugin, as the
// PXE server's own attachment needs; call it once per address (an IPv4 and an IPv6 one, say).
// A VM's attachment must have no IPAM, or KubeVirt answers the guest's DHCP itself.
func WithStaticIP(cidr string) NADOption {
	return nadOptionFunc(func(c *bridgeConf) error {
		p, err := ValidateHostCIDR(cidr)
		if err != nil {
			return err
		}
		if c.IPAM == nil {
			c.IPAM = &staticIPAM{Type: "static"}
		}
		c.IPAM.Addresses = append(c.IPAM.Addresses, staticAddress{Address: p.String()})
		return nil
	})
}

// WithMACSpoofCheck turns the bridge plugin's MAC spoof check on or off (off by default):
// when on, only the pod's (or VM's) own MAC may leave the port.
func WithMACSpoofCheck(on bool) NADOption {
	return nadOptionFunc(func(c *bridgeConf) error {
		c.MACSpoofChk = on
		return nil
	})
}

// BridgeNAD builds a NetworkAttachmentDefinition that attaches to the existing node bridge
// named bridge, with no IPAM unless WithStaticIP asks for it and MAC spoof checking off. It
// makes no client calls; invalid input is refused with a *FieldError naming field and value.
func BridgeNAD(name, namespace, bridge string, opts ...NADOption) (*nadv1.NetworkAttachmentDefinition, error) {
	if err := ValidateNADName(name); err != nil {
		return nil, fmt.Errorf("network attachment %s/%s: %w", namespace, name, err)
	}
	if err := ValidateNamespace(namespace); err != nil {
		return nil, fmt.Errorf("network attachment %s/%s: %w", namespace, name, err)
	}
	if err := ValidateBridgeName(bridge); err != nil {
		return nil, fmt.Errorf("network attachment %s/%s: %w", namespace, name, err)
	}
	conf := bridgeConf{CNIVersion: CNIVersion, Name: name, Type: "bridge", Bridge: bridge}
	for _, o := range opts {
		if err := o.applyNAD(&conf); err != nil {
			return nil, fmt.Errorf("network attachment %s/%s: %w", namespace, name, err)
		}
	}
	raw, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("network attachment %s/%s: encode config: %w", namespace, name, err)
	}
	return &nadv1.NetworkAttachmentDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: nadv1.SchemeGroupVersion.String(), Kind: "NetworkAttachmentDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: string(raw)},
	}, nil
}

// FieldError is an input value that was refused before anything was created: which field,
// the value as given, and why.
type FieldError struct {
	Field  string
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Reason)
}

// ValidateVLAN refuses an 802.1Q VLAN id outside 1-4094 (0 and 4095 are reserved).
func ValidateVLAN(id int) error {
	if id < 1 || id > 4094 {
		return &FieldError{Field: "vlan", Value: strconv.Itoa(id), Reason: "must be between 1 and 4094"}
	}
	return nil
}

// ValidateBridgeName refuses a name the Linux kernel would refuse for a network interface:
// empty, longer than 15 bytes, "." or "..", or containing '/', ':' or white space.
func ValidateBridgeName(name string) error {
	bad := func(reason string) error { return &FieldError{Field: "bridge", Value: name, Reason: reason} }
	switch {
	case name == "":
		return bad("must not be empty")
	case len(name) > 15:
		return bad("longer than the kernel's 15-byte interface name limit")
	case name == "." || name == "..":
		return bad("is not a valid interface name")
	case strings.ContainsAny(name, "/: \t\n\r\v\f"):
		return bad("must not contain '/', ':' or white space")
	}
	return nil
}

// ValidateNADName refuses a NetworkAttachmentDefinition name the API server would refuse.
func ValidateNADName(name string) error {
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return &FieldError{Field: "name", Value: name, Reason: strings.Join(msgs, "; ")}
	}
	return nil
}

// ValidateNamespace refuses a namespace name the API server would refuse.
func ValidateNamespace(ns string) error {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return &FieldError{Field: "namespace", Value: ns, Reason: strings.Join(msgs, "; ")}
	}
	return nil
}

// ValidateHostCIDR parses an interface address in CIDR form (192.168.100.1/24) and refuses
// one that is not a usable host address of its prefix.
func ValidateHostCIDR(cidr string) (netip.Prefix, error) {
	bad := func(reason string) (netip.Prefix, error) {
		return netip.Prefix{}, &FieldError{Field: "static IP", Value: cidr, Reason: reason}
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return bad("not an address in CIDR form (like 192.168.100.1/24): " + err.Error())
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return bad("must not carry an IPv6 zone")
	case a.Is4In6():
		return bad("write IPv4 addresses in dotted form, not IPv4-mapped IPv6")
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return bad("is not a unicast host address")
	}
	if a.Is4() && p.Bits() < 31 {
		if a == p.Masked().Addr() {
			return bad("is the network address of its prefix, not a host address")
		}
		if a == lastAddr(p) {
			return bad("is the broadcast address of its prefix, not a host address")
		}
	}
	return p, nil
}

// lastAddr returns the highest address of an IPv4 prefix (its broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
