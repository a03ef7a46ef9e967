package vmi

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	v1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the builders")

// documented is the VMI spec of the PXE procedure as REFERENCE §1 writes it, in upstream field
// names; the builders must produce the same firmware, interfaces and networks.
const documented = `
domain:
  firmware: {bootloader: {bios: {useSerial: true}}}
  devices:
    interfaces:
    - {name: default, masquerade: {}}
    - {name: pxe-net, bridge: {}, macAddress: "de:00:00:00:00:de", bootOrder: 1}
networks:
- {name: default, pod: {}}
- {name: pxe-net, multus: {networkName: pxe-net-conf}}
`

func TestScenarioMatchesDocumentedFields(t *testing.T) {
	var want v1.VirtualMachineInstanceSpec
	if err := yaml.UnmarshalStrict([]byte(documented), &want); err != nil {
		t.Fatalf("decode documented spec: %v", err)
	}
	got := scenario().Spec
	if !equality.Semantic.DeepEqual(got.Domain.Firmware, want.Domain.Firmware) {
		t.Errorf("firmware = %+v, want %+v", got.Domain.Firmware, want.Domain.Firmware)
	}
	if !equality.Semantic.DeepEqual(got.Domain.Devices.Interfaces, want.Domain.Devices.Interfaces) {
		t.Errorf("interfaces = %+v, want %+v", got.Domain.Devices.Interfaces, want.Domain.Devices.Interfaces)
	}
	if !equality.Semantic.DeepEqual(got.Networks, want.Networks) {
		t.Errorf("networks = %+v, want %+v", got.Networks, want.Networks)
	}
}

func TestScenarioRendersAsGoldenYAML(t *testing.T) {
	tests := []struct {
		file string
		vmi  *v1.VirtualMachineInstance
	}{
		{"pxe-client-bios.yaml", scenario()},
		{"pxe-client-efi.yaml", New("pxe-client",
			WithNamespace("pxec-test"),
			WithMemory("512Mi"),
			WithEFI(false),
			WithInterface(MasqueradeInterface("default")),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"), WithBootOrder(1))),
			WithNetwork(PodNetwork()),
			WithNetwork(MultusNetwork("pxe-net", "pxe-net-conf")),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if err := Validate(tt.vmi); err != nil {
				t.Fatalf("golden VMI is not valid: %v", err)
			}
			got, err := yaml.Marshal(tt.vmi)
			if err != nil {
				t.Fatalf("render VMI: %v", err)
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatalf("write golden file: %v", err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (go test -run %s -update writes it): %v", t.Name(), err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the builders' VMI; got:\n%s", path, got)
			}
			// The golden file must also be a VMI KubeVirt's types decode without loss.
			var back v1.VirtualMachineInstance
			if err := yaml.UnmarshalStrict(want, &back); err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if !equality.Semantic.DeepEqual(&back, tt.vmi) {
				t.Errorf("%s decodes to a different VMI than the builders made", path)
			}
		})
	}
}
