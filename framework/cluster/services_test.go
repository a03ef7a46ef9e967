package cluster

import (
	"slices"
	"strings"
	"testing"
)

func TestServiceSubnetsKeepsIPv4AndNamesBadSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []string
	}{
		{"", []string{"10.96.0.0/16"}},
		{"10.100.0.5/16", []string{"10.100.0.0/16"}},
		{"10.96.0.0/16,fd00:10:96::/112", []string{"10.96.0.0/16"}},
		{"fd00:10:96::/112", nil},
	} {
		got, err := serviceSubnets(tc.spec)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("serviceSubnets(%q) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
	_, err := serviceSubnets("10.96.0.0/99")
	if err == nil || !strings.Contains(err.Error(), "networking.serviceSubnet") || !strings.Contains(err.Error(), "10.96.0.0/99") {
		t.Fatalf("bad subnet: err = %v, want field and value named", err)
	}
}

func TestServiceGuardRulesRejectOnlyTCPToTheSubnet(t *testing.T) {
	rules := serviceGuardRules("10.96.0.0/16")
	if len(rules) != 2 || rules[0][0] != "OUTPUT" || rules[1][0] != "FORWARD" {
		t.Fatalf("rules = %v, want one on OUTPUT and one on FORWARD", rules)
	}
	for _, r := range rules {
		s := strings.Join(r, " ")
		for _, want := range []string{"-d 10.96.0.0/16", "-p tcp", "-j REJECT --reject-with tcp-reset"} {
			if !strings.Contains(s, want) {
				t.Errorf("rule %q lacks %q", s, want)
			}
		}
	}
}
