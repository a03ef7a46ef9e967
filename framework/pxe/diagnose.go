package pxe

import (
	"errors"
	"fmt"
	"slices"
)

// ErrServerGone is wrapped by a reader of a server's event log (framework/pxepod's) when the
// server has stopped for good: its process exited, its pod is gone. Nothing will be served any
// more, so a wait for the server's events ends at once on it.
var ErrServerGone = errors.New("the PXE server is gone")

// IgnoredBeforeGivingUp is how many of a MAC's DHCP messages the server must have ignored
// before a waiting client can stop waiting for an answer: iPXE retransmits its DISCOVER a few
// times over about 30 s before it gives up, and three ignored messages already prove that
// nothing will answer.
const IgnoredBeforeGivingUp = 3

// DHCPDiagnosis explains, from a MAC's events, why the MAC got no DHCP answer, and counts the
// DHCP messages the server ignored from it. why is empty when the server offered or
// acknowledged an address.
func DHCPDiagnosis(mac string, events []Event) (why string, ignored int) {
	var last Event
	for _, e := range events {
		switch e.Kind {
		case KindDHCPIgnored:
			ignored++
			last = e
		case KindDHCPAck, KindDHCPOffer:
			return "", ignored
		}
	}
	if ignored > 0 {
		return fmt.Sprintf("no DHCP answer for %s: the PXE server ignored %d DHCP message(s) from it (%s)", mac, ignored, last.Reason), ignored
	}
	return fmt.Sprintf("no DHCP answer for %s: the PXE server received no DHCP message from it", mac), 0
}

// LastScriptNonce returns the nonce of the last iPXE script served in events, or "".
func LastScriptNonce(events []Event) string {
	for _, e := range slices.Backward(events) {
		if e.Kind == KindScript && e.Status == 200 {
			return e.Nonce
		}
	}
	return ""
}
