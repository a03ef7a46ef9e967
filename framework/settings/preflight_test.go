package settings

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCheckBridgeAsksEveryNode(t *testing.T) {
	errProbe := errors.New("exec failed")
	tests := []struct {
		name    string
		nodes   []string
		present map[string]bool
		fail    map[string]bool
		want    []string // lines of the error; none means no error
	}{
		{name: "present everywhere", nodes: []string{"cp", "w1"}, present: map[string]bool{"cp": true, "w1": true}},
		{name: "absent on one node", nodes: []string{"cp", "w1", "w2"}, present: map[string]bool{"cp": true, "w2": true},
			want: []string{`bridge "br1": absent on node "w1"`}},
		{name: "absent on every node", nodes: []string{"cp", "w1"},
			want: []string{`bridge "br1": absent on node "cp"`, `bridge "br1": absent on node "w1"`}},
		{name: "probe fails on one node, absent on another", nodes: []string{"cp", "w1"}, fail: map[string]bool{"cp": true},
			want: []string{`look for bridge "br1" on node "cp": exec failed`, `bridge "br1": absent on node "w1"`}},
		{name: "no nodes", want: []string{`check bridge "br1": no nodes to look on`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			probe := func(ctx context.Context, node string) (bool, error) {
				asked = append(asked, node)
				if tt.fail[node] {
					return false, errProbe
				}
				return tt.present[node], nil
			}
			err := Default().CheckBridge(context.Background(), tt.nodes, probe)
			if strings.Join(asked, ",") != strings.Join(tt.nodes, ",") {
				t.Errorf("probe asked %q, want every node %q", asked, tt.nodes)
			}
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckBridge = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckBridge = nil, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("CheckBridge = %q, want %q", got, tt.want)
			}
			if len(tt.fail) > 0 && !errors.Is(err, errProbe) {
				t.Errorf("CheckBridge error does not wrap the probe's error")
			}
		})
	}
}

func TestCheckBridgeStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := Default().CheckBridge(ctx, []string{"cp"}, func(context.Context, string) (bool, error) {
		called = true
		return true, nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CheckBridge = %v, want context.Canceled", err)
	}
	if called {
		t.Errorf("CheckBridge probed a node after its context ended")
	}
}
