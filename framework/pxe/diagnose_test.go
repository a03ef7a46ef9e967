package pxe

import "testing"

func TestDHCPDiagnosisTellsIgnoredSilentAndAnswered(t *testing.T) {
	const mac = "de:00:00:00:00:ad"
	ignored := Event{Kind: KindDHCPIgnored, Reason: ReasonNotAllowListed}
	why, n := DHCPDiagnosis(mac, []Event{ignored, {Kind: KindRouterSolicitation}, ignored, ignored})
	if n != 3 || why != "no DHCP answer for de:00:00:00:00:ad: the PXE server ignored 3 DHCP message(s) from it (not on allow-list)" {
		t.Errorf("ignored: %q, %d", why, n)
	}
	if why, n := DHCPDiagnosis(mac, nil); n != 0 || why != "no DHCP answer for de:00:00:00:00:ad: the PXE server received no DHCP message from it" {
		t.Errorf("silent: %q, %d", why, n)
	}
	if why, _ := DHCPDiagnosis(mac, []Event{ignored, {Kind: KindDHCPOffer}}); why != "" {
		t.Errorf("answered: %q, want empty", why)
	}
}

func TestLastScriptNonceSkipsFailedScripts(t *testing.T) {
	events := []Event{
		{Kind: KindScript, Status: 200, Nonce: "a"},
		{Kind: KindScript, Status: 200, Nonce: "b"},
		{Kind: KindScript, Status: 404, Nonce: "c"},
		{Kind: KindHTTP, Status: 200},
	}
	if got := LastScriptNonce(events); got != "b" {
		t.Errorf("LastScriptNonce = %q, want b", got)
	}
	if got := LastScriptNonce(nil); got != "" {
		t.Errorf("no events: %q", got)
	}
}
