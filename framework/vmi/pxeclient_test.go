package vmi

import (
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

func TestPXEClientIsTheDocumentedVMI(t *testing.T) {
	for _, fw := range firmware.All {
		v := PXEClient("pxe-guest", "de:00:00:00:00:de", "pxe-net", fw, WithNamespace("ns"))
		if err := Validate(v); err != nil {
			t.Errorf("%s: %v", fw, err)
		}
		if got := FirmwareOf(v); got != fw {
			t.Errorf("FirmwareOf = %s, want %s", got, fw)
		}
		ifs := v.Spec.Domain.Devices.Interfaces
		if len(ifs) != 2 || ifs[0].Masquerade == nil || ifs[1].Bridge == nil || ifs[1].MacAddress != "de:00:00:00:00:de" ||
			ifs[1].BootOrder == nil || *ifs[1].BootOrder != 1 || v.Namespace != "ns" {
			t.Errorf("%s: interfaces %+v in %q", fw, ifs, v.Namespace)
		}
	}
}

func TestWithoutBootOrderLeavesTheInterfaceUntried(t *testing.T) {
	v := PXEClient("pxe-guest", "de:00:00:00:00:de", "pxe-net", firmware.BIOS, WithoutBootOrder(PXEInterface))
	if v.Spec.Domain.Devices.Interfaces[1].BootOrder != nil {
		t.Fatal("boot order still set")
	}
	if err := Validate(v); err == nil {
		t.Error("Validate accepted a PXE client without boot order")
	}
	if err := ValidateNoBootOrder(v); err != nil {
		t.Errorf("ValidateNoBootOrder: %v", err)
	}
}
