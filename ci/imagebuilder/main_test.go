package main

import (
	"reflect"
	"testing"
)

func TestSelectTargetsKeepsBuildOrder(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"node", "kubevirt", "network"}},
		{[]string{"network", "node"}, []string{"node", "network"}},
		{[]string{"kubevirt", "kubevirt"}, []string{"kubevirt"}},
		{[]string{"sonobuoy", "network"}, []string{"network", "sonobuoy"}},
		{[]string{"kubevirt", "kubevirt-all", "node"}, []string{"node", "kubevirt-all"}},
	}
	for _, tc := range cases {
		got, err := selectTargets(tc.args)
		if err != nil {
			t.Fatalf("selectTargets(%q): %v", tc.args, err)
		}
		var names []string
		for _, g := range got {
			names = append(names, g.name)
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("selectTargets(%q) = %q, want %q", tc.args, names, tc.want)
		}
	}
}

func TestSelectTargetsRejectsUnknownName(t *testing.T) {
	if _, err := selectTargets([]string{"node", "nodes"}); err == nil {
		t.Fatal(`target "nodes" accepted`)
	}
}
