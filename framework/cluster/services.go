package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// defaultServiceSubnet is kind's service CIDR for IPv4 clusters when the config names none.
const defaultServiceSubnet = "10.96.0.0/16"

// serviceGuardRules are the iptables rules that keep a connection to a service IP inside the
// node when kube-proxy has not programmed that service yet. kube-proxy rewrites a programmed
// service IP in the nat table, before the filter table sees the packet, so these rules only
// ever meet service IPs that have no rules yet. Without them such a connection follows the
// node's default route out of the cluster: on a machine whose network answers every TCP
// connection (as the sandbox this suite is developed in does, with HTTP 404), the API server
// takes that answer for virt-api's and marks KubeVirt's APIServices FailedDiscoveryCheck for
// minutes. A reset instead makes the client retry until kube-proxy catches up.
func serviceGuardRules(subnet string) [][]string {
	var rules [][]string
	for _, chain := range []string{"OUTPUT", "FORWARD"} {
		rules = append(rules, []string{chain, "-d", subnet, "-p", "tcp",
			"-m", "comment", "--comment", "pxec: service IP not programmed yet",
			"-j", "REJECT", "--reject-with", "tcp-reset"})
	}
	return rules
}

// serviceSubnets returns the IPv4 service CIDRs of a rendered config (kind allows a
// comma-separated dual-stack pair); IPv6 ones are left alone, as the suite runs IPv4 clusters.
func serviceSubnets(spec string) ([]string, error) {
	if spec == "" {
		spec = defaultServiceSubnet
	}
	var out []string
	for _, s := range strings.Split(spec, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("networking.serviceSubnet %q: %w", spec, err)
		}
		if p.Addr().Is4() {
			out = append(out, p.Masked().String())
		}
	}
	return out, nil
}

// guardServices installs serviceGuardRules on every node, once each (a rule already present is
// left as it is).
func (c *Cluster) guardServices(ctx context.Context, subnetSpec string) error {
	subnets, err := serviceSubnets(subnetSpec)
	if err != nil {
		return err
	}
	for _, n := range c.Nodes {
		for _, subnet := range subnets {
			for _, r := range serviceGuardRules(subnet) {
				check := append([]string{"iptables", "-w", "-C"}, r...)
				if _, err := c.NodeExec(ctx, n, check...); err == nil {
					continue
				}
				insert := append([]string{"iptables", "-w", "-I", r[0], "1"}, r[1:]...)
				if _, err := c.NodeExec(ctx, n, insert...); err != nil {
					return fmt.Errorf("guard service subnet %s on node %s: %w", subnet, n, err)
				}
			}
		}
	}
	return nil
}
