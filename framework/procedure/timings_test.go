package procedure

import (
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

func TestTimingsKeepFirstMarkInOrder(t *testing.T) {
	var tm Timings
	tm.Mark(StepRunning) // before Start: ignored
	if got := tm.String(); got != "no milestone reached" {
		t.Fatalf("before Start: %q", got)
	}
	tm.Start()
	tm.Mark(StepRunning)
	tm.Mark(StepDHCP)
	tm.Mark(StepRunning)
	m := tm.Marks()
	if len(m) != 2 || m[0].Step != StepRunning || m[1].Step != StepDHCP || m[1].Seconds < m[0].Seconds {
		t.Fatalf("marks = %v", m)
	}
	if s := tm.String(); !strings.HasPrefix(s, "running=") || !strings.Contains(s, " dhcp=") {
		t.Errorf("String() = %q", s)
	}
}

func TestBootChainNamesFirmwareLoaderAndIPXE(t *testing.T) {
	rom := []pxe.Event{{Kind: pxe.KindDHCPDiscover}, {Kind: pxe.KindDHCPAck, UserClass: "iPXE", Path: "http://x/ipxe/m"}}
	if got := BootChain(rom); got != "iPXE ROM" {
		t.Errorf("ROM boot: %q", got)
	}
	efi := []pxe.Event{{Kind: pxe.KindDHCPAck, Firmware: "efi", Path: "ipxe.efi"}, {Kind: pxe.KindTFTP}, {Kind: pxe.KindDHCPAck, UserClass: "iPXE"}}
	if got := BootChain(efi); got != "efi PXE -> ipxe.efi over TFTP -> iPXE" {
		t.Errorf("EFI chainload: %q", got)
	}
	if got := BootChain(efi[:1]); got != "efi PXE -> ipxe.efi over TFTP -> no ACK to iPXE" {
		t.Errorf("stopped before iPXE: %q", got)
	}
}
