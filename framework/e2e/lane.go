package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// A lane is what one parallel process of the suite owns on the shared PXE bridge, so that specs
// running at once never answer each other's guests: its PXE servers' address and its clients'
// reserved addresses (a slice of 192.168.100.0/24 of laneWidth addresses) and its own MACs.
// A run on one process has lane 1 alone, with the addresses and MACs the documented procedure
// names.
const (
	laneWidth = 16 // addresses per lane: the server at .1, clients from .10
	maxLanes  = 15 // 15 lanes of 16 fit a /24 with .0 and .255 left alone
)

var pxeNetwork = netip.MustParsePrefix("192.168.100.0/24")

// SetLane tells the Env which parallel process (1-based) of how many it serves.
func (e *Env) SetLane(process, total int) error {
	if process < 1 || total < 1 || process > total || total > maxLanes {
		return fmt.Errorf("parallel process %d of %d: the PXE network has room for %d processes", process, total, maxLanes)
	}
	e.lane, e.lanes = process, total
	return nil
}

// Parallel reports whether the suite runs on more than one process.
func (e *Env) Parallel() bool { return e.lanes > 1 }

// laneAddr is the address offset host addresses into this lane.
func (e *Env) laneAddr(host int) netip.Addr {
	a := pxeNetwork.Addr().As4()
	a[3] = byte((max(e.lane, 1)-1)*laneWidth + host)
	return netip.AddrFrom4(a)
}

// serverAddress is the lane's PXE server address on the PXE network.
func (e *Env) serverAddress() netip.Prefix {
	return netip.PrefixFrom(e.laneAddr(1), pxeNetwork.Bits())
}

// clientAddress is the lane's first reserved client address.
func (e *Env) clientAddress() netip.Addr { return e.laneAddr(10) }

// OwnMAC is the MAC of a spec's guest that is not the documented procedure's: the configured
// MAC on one process; with parallel processes a locally administered MAC of this lane's alone,
// so that no other process's PXE server answers it, nor this one another's guest.
func (e *Env) OwnMAC() string {
	if !e.Parallel() {
		return e.Config.MAC
	}
	return fmt.Sprintf("de:00:00:00:%02x:de", e.lane)
}

// OwnAllowList is the allow-list of a PXE server for OwnMAC's guests: the configured one on one
// process, OwnMAC alone with parallel processes (the configured MACs may be booting elsewhere).
func (e *Env) OwnAllowList() []string {
	if !e.Parallel() {
		return e.Config.AllowList()
	}
	return []string{e.OwnMAC()}
}

// UnlistedMAC returns a locally administered unicast MAC of this lane that is on no allow-list
// of the run, for the unknown-MAC spec.
func (e *Env) UnlistedMAC() string {
	taken := append(e.Config.AllowList(), e.OwnMAC())
	for i := 0xad; ; i++ {
		m := fmt.Sprintf("de:00:00:00:%02x:%02x", max(e.lane, 1)-1, i&0xff)
		if !slices.ContainsFunc(taken, func(a string) bool { return strings.EqualFold(a, m) }) {
			return m
		}
	}
}
