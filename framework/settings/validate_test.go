package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

func TestValidateNamesKeyAndValue(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // the lines of the error after "config: "; none means valid
	}{
		{name: "defaults", change: func(*Config) {}},
		{name: "uppercase MAC", change: func(c *Config) { c.MAC = "DE:00:00:00:00:DE" }},
		{name: "VLAN 1 and 4094", change: func(c *Config) { c.VLAN = 4094 }},
		{name: "15-byte bridge", change: func(c *Config) { c.Bridge = "br-0123456789ab" }},
		{name: "existing kubeconfig", change: func(c *Config) { c.Kubeconfig = kubeconfig }},
		{name: "artifacts dir to be created", change: func(c *Config) { c.ArtifactsDir = filepath.Join(dir, "new", "deeper") }},
		{name: "one firmware", change: func(c *Config) { c.Firmware = []firmware.Firmware{firmware.EFI} }},

		{name: "malformed MAC", change: func(c *Config) { c.MAC = "de:00:zz" },
			want: []string{`mac "de:00:zz": not a MAC address such as de:00:00:00:00:de`}},
		{name: "empty MAC", change: func(c *Config) { c.MAC = "" },
			want: []string{`mac "": not a MAC address such as de:00:00:00:00:de`}},
		{name: "multicast MAC", change: func(c *Config) { c.MAC = "01:00:5e:00:00:de" },
			want: []string{`mac "01:00:5e:00:00:de": a multicast MAC address (bit 0 of the first octet is set)`}},
		{name: "broadcast MAC", change: func(c *Config) { c.MAC = "ff:ff:ff:ff:ff:ff" },
			want: []string{`mac "ff:ff:ff:ff:ff:ff": a multicast MAC address (bit 0 of the first octet is set)`}},
		{name: "EUI-64 MAC", change: func(c *Config) { c.MAC = "02:00:00:00:00:00:00:01" },
			want: []string{`mac "02:00:00:00:00:00:00:01": not an EUI-48 MAC address (8 octets)`}},
		{name: "malformed allow-listed MAC", change: func(c *Config) { c.AllowedMACs = []string{"de:00:00:00:00:de", "de:00:00:00:00"} },
			want: []string{`allowedMACs[1] "de:00:00:00:00": not a MAC address such as de:00:00:00:00:de`}},
		{name: "isolation bridge is the PXE bridge", change: func(c *Config) { c.IsolationBridge = c.Bridge },
			want: []string{`isolationBridge "br1": is the PXE bridge itself`}},
		{name: "isolation bridge name too long", change: func(c *Config) { c.IsolationBridge = "br-0123456789abc" },
			want: []string{`isolationBridge "br-0123456789abc": longer than 15 bytes`}},
		{name: "bridge name too long", change: func(c *Config) { c.Bridge = "br-0123456789abc" },
			want: []string{`bridge "br-0123456789abc": longer than 15 bytes, the kernel's limit (IFNAMSIZ)`}},
		{name: "bridge name with slash", change: func(c *Config) { c.Bridge = "br/1" },
			want: []string{`bridge "br/1": contains '/' or ':', which interface names cannot`}},
		{name: "bridge created by policy", change: func(c *Config) { c.BridgeCreate = BridgeByNNCP }},
		{name: "unknown bridge.create", change: func(c *Config) { c.BridgeCreate = "nmcli" },
			want: []string{`bridge.create "nmcli": unknown: must be empty (the bridge exists on every node) or nncp`}},
		{name: "bridge name with colon", change: func(c *Config) { c.Bridge = "br1:0" },
			want: []string{`bridge "br1:0": contains '/' or ':', which interface names cannot`}},
		{name: "bridge name with space", change: func(c *Config) { c.Bridge = "br 1" },
			want: []string{`bridge "br 1": contains whitespace, which interface names cannot`}},
		{name: "bridge name with tab", change: func(c *Config) { c.Bridge = "br\t1" },
			want: []string{`bridge "br\t1": contains whitespace, which interface names cannot`}},
		{name: "bridge name dot", change: func(c *Config) { c.Bridge = ".." },
			want: []string{`bridge "..": not an interface name`}},
		{name: "empty bridge name", change: func(c *Config) { c.Bridge = "" },
			want: []string{`bridge "": must name a bridge`}},
		{name: "VLAN too high", change: func(c *Config) { c.VLAN = 4095 },
			want: []string{`vlan 4095: not a VLAN ID: must be 1 to 4094, or 0 for none`}},
		{name: "VLAN negative", change: func(c *Config) { c.VLAN = -1 },
			want: []string{`vlan -1: not a VLAN ID: must be 1 to 4094, or 0 for none`}},
		{name: "namespace with uppercase", change: func(c *Config) { c.Namespace = "PXEC" },
			want: []string{`namespace "PXEC": not a DNS-1123 label`}},
		{name: "namespace with dot", change: func(c *Config) { c.Namespace = "pxe.c" },
			want: []string{`namespace "pxe.c": not a DNS-1123 label`}},
		{name: "namespace prefix too long for the random part", change: func(c *Config) { c.Namespace = strings.Repeat("n", 58) },
			want: []string{`namespace "` + strings.Repeat("n", 58) + `": longer than 57 characters, leaving no room for -<random>`}},
		{name: "unknown firmware", change: func(c *Config) { c.Firmware = []firmware.Firmware{firmware.BIOS, "uefi"} },
			want: []string{`firmware[1] "uefi": unknown firmware: must be bios or efi`}},
		{name: "firmware twice", change: func(c *Config) { c.Firmware = []firmware.Firmware{firmware.EFI, firmware.EFI} },
			want: []string{`firmware[1] "efi": listed twice`}},
		{name: "no firmware", change: func(c *Config) { c.Firmware = nil },
			want: []string{`firmware "": must name at least one of bios, efi`}},
		{name: "missing kubeconfig", change: func(c *Config) { c.Kubeconfig = filepath.Join(dir, "nope") },
			want: []string{`kubeconfig "` + filepath.Join(dir, "nope") + `": not readable: open `}},
		{name: "kubeconfig is a directory", change: func(c *Config) { c.Kubeconfig = dir },
			want: []string{`kubeconfig "` + dir + `": a directory, not a kubeconfig file`}},
		{name: "artifacts dir under a file", change: func(c *Config) { c.ArtifactsDir = filepath.Join(aFile, "sub") },
			want: []string{`artifactsDir "` + filepath.Join(aFile, "sub") + `": not a directory: ` + aFile + ` is a file`}},
		{name: "artifacts dir on a file system that takes no files", change: func(c *Config) { c.ArtifactsDir = "/proc/pxec-artifacts" },
			want: []string{`artifactsDir "/proc/pxec-artifacts": not writable: open /proc/.pxec-write-check-`}},
		{name: "no artifacts dir", change: func(c *Config) { c.ArtifactsDir = "" },
			want: []string{`artifactsDir "": must name a directory`}},
		{name: "no PXE server image", change: func(c *Config) { c.Images.PXEServer = "" },
			want: []string{`images.pxeServer "": not an image reference`}},
		{name: "PXE server image with space", change: func(c *Config) { c.Images.PXEServer = "pxe server" },
			want: []string{`images.pxeServer "pxe server": not an image reference`}},
		{name: "zero and negative timeouts", change: func(c *Config) { c.Timeouts.DHCP = 0; c.Timeouts.Cleanup = -1 },
			want: []string{`timeouts.dhcp "0s": must be positive`, `timeouts.cleanup "-1ns": must be positive`}},
		{name: "every timeout is checked", change: func(c *Config) { c.Timeouts = Timeouts{} },
			want: []string{`timeouts.vmiRunning "0s"`, `timeouts.bootMenu "0s"`, `timeouts.ipxe "0s"`, `timeouts.screenshot "0s"`,
				`timeouts.dhcp "0s"`, `timeouts.pxeBoot "0s"`, `timeouts.guestReady "0s"`, `timeouts.ssh "0s"`,
				`timeouts.consoleLogin "0s"`, `timeouts.pxeServer "0s"`, `timeouts.nodeProbe "0s"`, `timeouts.cleanup "0s"`,
				`timeouts.nodeNetwork "0s"`}},
		{name: "emulation scale below one", change: func(c *Config) { c.EmulationScale = 0.5 },
			want: []string{`emulationScale 0.5: must be at least 1`}},
		{name: "every problem at once", change: func(c *Config) { c.MAC = "x"; c.VLAN = 5000 },
			want: []string{`mac "x": not a MAC`, `vlan 5000: not a VLAN ID`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.ArtifactsDir = filepath.Join(dir, "artifacts")
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			msg, ok := strings.CutPrefix(err.Error(), "config: ")
			if !ok {
				t.Fatalf("Validate() = %q, want it to start with \"config: \"", err)
			}
			got := strings.Split(msg, "\n")
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() found %d problems, want %d:\n%s", len(got), len(tt.want), msg)
			}
			for i := range tt.want {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestValidateCreatesNothing(t *testing.T) {
	parent := t.TempDir()
	c := Default()
	c.ArtifactsDir = filepath.Join(parent, "artifacts")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("Validate left %s behind in the artifacts dir's parent", e.Name())
	}
}
