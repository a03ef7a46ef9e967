package lab

import (
	"context"
	"fmt"
	"net/netip"
)

// Segment is a Linux bridge inside a lab namespace with an IPv4 address for the PXE server: the
// lab's stand-in for a node bridge and the VLAN the PXE server shares with the VM.
type Segment struct {
	// NS is the namespace the bridge lives in.
	NS *Namespace
	// Bridge is the bridge's name.
	Bridge string
	// ServerAddr is the bridge's own address (the PXE server's), with the segment's prefix length.
	ServerAddr netip.Prefix
}

// CreateSegment creates a bridge with STP off and no forwarding delay (so a new port forwards at
// once), gives it serverAddr and brings it up. IPv6 duplicate address detection is off on it so
// its link-local address, which router advertisements are sent from, is usable at once.
func CreateSegment(ctx context.Context, ns *Namespace, bridge string, serverAddr netip.Prefix) (*Segment, error) {
	if !serverAddr.Addr().Is4() {
		return nil, fmt.Errorf("create segment %s: server address %s is not IPv4", bridge, serverAddr)
	}
	steps := [][]string{
		{"sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"ip", "addr", "add", serverAddr.String(), "dev", bridge},
		{"ip", "link", "set", bridge, "up"},
	}
	for _, s := range steps {
		if err := ns.Run(ctx, s...); err != nil {
			return nil, fmt.Errorf("create segment %s in %s: %w", bridge, ns.Name, err)
		}
	}
	return &Segment{NS: ns, Bridge: bridge, ServerAddr: serverAddr}, nil
}

// AddTap creates a persistent tap device on the bridge, for a QEMU guest started in the same
// namespace to open by name.
func (s *Segment) AddTap(ctx context.Context, tap string) error {
	for _, step := range [][]string{
		{"ip", "tuntap", "add", "dev", tap, "mode", "tap"},
		{"ip", "link", "set", tap, "master", s.Bridge},
		{"ip", "link", "set", tap, "up"},
	} {
		if err := s.NS.Run(ctx, step...); err != nil {
			return fmt.Errorf("add tap %s to %s: %w", tap, s.Bridge, err)
		}
	}
	return nil
}

// State is the bridge's ports and addresses as `bridge link` and `ip addr` print them, for
// artifacts and the lab's verdict.
func (s *Segment) State(ctx context.Context) string {
	links, _ := s.NS.Output(ctx, "bridge", "link")
	addrs, _ := s.NS.Output(ctx, "ip", "-br", "addr")
	return links + addrs
}
