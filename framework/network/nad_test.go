package network

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBridgeNADConfigMatchesDocumentedShape(t *testing.T) {
	cases := []struct {
		name string
		opts []NADOption
		want string
	}{
		{
			name: "no IPAM, spoof check off by default",
			want: `{"cniVersion":"0.3.1","name":"pxe-net-conf","type":"bridge","bridge":"br1","macspoofchk":false}`,
		},
		{
			name: "VLAN as in the documented procedure",
			opts: []NADOption{WithVLAN(100)},
			want: `{"cniVersion":"0.3.1","name":"pxe-net-conf","type":"bridge","bridge":"br1","vlan":100,"macspoofchk":false}`,
		},
		{
			name: "static IPAM for the PXE server",
			opts: []NADOption{WithStaticIP("192.168.100.1/24")},
			want: `{"cniVersion":"0.3.1","name":"pxe-net-conf","type":"bridge","bridge":"br1","macspoofchk":false,"ipam":{"type":"static","addresses":[{"address":"192.168.100.1/24"}]}}`,
		},
		{
			name: "two static addresses, IPv6 written canonically",
			opts: []NADOption{WithStaticIP("192.168.100.1/24"), WithStaticIP("fd00:0:0:0::1/64")},
			want: `{"cniVersion":"0.3.1","name":"pxe-net-conf","type":"bridge","bridge":"br1","macspoofchk":false,"ipam":{"type":"static","addresses":[{"address":"192.168.100.1/24"},{"address":"fd00::1/64"}]}}`,
		},
		{
			name: "spoof check on",
			opts: []NADOption{WithMACSpoofCheck(true)},
			want: `{"cniVersion":"0.3.1","name":"pxe-net-conf","type":"bridge","bridge":"br1","macspoofchk":true}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nad, err := BridgeNAD("pxe-net-conf", "pxec-e2e", "br1", tc.opts...)
			if err != nil {
				t.Fatalf("BridgeNAD: %v", err)
			}
			if nad.Spec.Config != tc.want {
				t.Errorf("config\n got %s\nwant %s", nad.Spec.Config, tc.want)
			}
			if nad.Name != "pxe-net-conf" || nad.Namespace != "pxec-e2e" {
				t.Errorf("object is %s/%s, want pxec-e2e/pxe-net-conf", nad.Namespace, nad.Name)
			}
			if nad.APIVersion != "k8s.cni.cncf.io/v1" || nad.Kind != "NetworkAttachmentDefinition" {
				t.Errorf("type is %s %s", nad.APIVersion, nad.Kind)
			}
			if !json.Valid([]byte(nad.Spec.Config)) {
				t.Errorf("config is not valid JSON")
			}
		})
	}
}

func TestBridgeNADRefusesBadInputNamingFieldAndValue(t *testing.T) {
	cases := []struct {
		name, nad, ns, bridge string
		opts                  []NADOption
		field, value          string
	}{
		{name: "VLAN 0", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithVLAN(0)}, field: "vlan", value: "0"},
		{name: "VLAN 4095", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithVLAN(4095)}, field: "vlan", value: "4095"},
		{name: "negative VLAN", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithVLAN(-1)}, field: "vlan", value: "-1"},
		{name: "empty bridge", nad: "n", ns: "ns", bridge: "", field: "bridge", value: ""},
		{name: "bridge name too long", nad: "n", ns: "ns", bridge: "br-0123456789abc", field: "bridge", value: "br-0123456789abc"},
		{name: "bridge name with slash", nad: "n", ns: "ns", bridge: "br/1", field: "bridge", value: "br/1"},
		{name: "bridge name with space", nad: "n", ns: "ns", bridge: "br 1", field: "bridge", value: "br 1"},
		{name: "upper-case NAD name", nad: "PXE", ns: "ns", bridge: "br1", field: "name", value: "PXE"},
		{name: "empty namespace", nad: "n", ns: "", bridge: "br1", field: "namespace", value: ""},
		{name: "not a CIDR", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithStaticIP("192.168.100.1")}, field: "static IP", value: "192.168.100.1"},
		{name: "network address", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithStaticIP("192.168.100.0/24")}, field: "static IP", value: "192.168.100.0/24"},
		{name: "broadcast address", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithStaticIP("192.168.100.255/24")}, field: "static IP", value: "192.168.100.255/24"},
		{name: "multicast", nad: "n", ns: "ns", bridge: "br1", opts: []NADOption{WithStaticIP("224.0.0.1/4")}, field: "static IP", value: "224.0.0.1/4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nad, err := BridgeNAD(tc.nad, tc.ns, tc.bridge, tc.opts...)
			if err == nil {
				t.Fatalf("BridgeNAD accepted it: %s", nad.Spec.Config)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q is not a *FieldError", err)
			}
			if fe.Field != tc.field || fe.Value != tc.value {
				t.Errorf("refused field %q value %q, want field %q value %q", fe.Field, fe.Value, tc.field, tc.value)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), `"`+tc.value+`"`) {
				t.Errorf("message %q does not name field %q and value %q", err, tc.field, tc.value)
			}
		})
	}
}

func TestHostCIDRAcceptsPointToPointAndIPv6(t *testing.T) {
	for _, cidr := range []string{"10.0.0.0/31", "10.0.0.1/32", "192.168.100.254/24", "fd00::/64", "2001:db8::1/128"} {
		if _, err := ValidateHostCIDR(cidr); err != nil {
			t.Errorf("ValidateHostCIDR(%q): %v", cidr, err)
		}
	}
}
