package bootimage

import (
	"slices"
	"strings"
	"testing"
)

// testGraph is shaped like Debian 6.1's virtio modules, plus oddities.
func testGraph() moduleGraph {
	g := moduleGraph{
		builtin:    map[string]bool{"rng_core": true},
		paths:      map[string]string{},
		compressed: map[string]string{"zmod": "kernel/zmod.ko.xz"},
		depends: map[string][]string{
			"virtio_ring":  nil,
			"virtio":       {"virtio_ring"},
			"failover":     nil,
			"net_failover": {"failover"},
			"virtio_net":   {"virtio_ring", "virtio", "net_failover"},
			"virtio_rng":   {"virtio", "virtio_ring", "rng_core"},
			"cycle_a":      {"cycle_b"},
			"cycle_b":      {"cycle_a"},
		},
	}
	for m := range g.depends {
		g.paths[m] = "lib/modules/6.1.0-test/kernel/" + m + ".ko"
	}
	return g
}

func TestModuleLoadOrder(t *testing.T) {
	tests := []struct {
		name        string
		want        []string
		wantLoaded  []string // as a set
		wantBuiltin []string
		wantErr     string
	}{
		{"dependencies are added", []string{"virtio_net"}, []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}, nil, ""},
		{"dash in a file name is an underscore", []string{"virtio-rng"}, []string{"virtio_ring", "virtio", "virtio_rng"}, []string{"rng_core"}, ""},
		{"built-in module is not loaded", []string{"rng_core", "virtio"}, []string{"virtio_ring", "virtio"}, []string{"rng_core"}, ""},
		{"each module once", []string{"virtio", "virtio_net", "virtio"}, []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}, nil, ""},
		{"unknown module", []string{"virtio", "nosuch"}, nil, nil, "neither built into the kernel nor shipped"},
		{"compressed module", []string{"zmod"}, nil, nil, "compressed"},
		{"cycle", []string{"cycle_a"}, nil, nil, "cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGraph()
			order, builtin, err := g.loadOrder(tt.want)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadOrder: error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadOrder: %v", err)
			}
			got := slices.Sorted(slices.Values(order))
			if !slices.Equal(got, slices.Sorted(slices.Values(tt.wantLoaded))) {
				t.Errorf("loaded %v, want the set %v", order, tt.wantLoaded)
			}
			if !slices.Equal(builtin, tt.wantBuiltin) {
				t.Errorf("builtin %v, want %v", builtin, tt.wantBuiltin)
			}
			pos := map[string]int{}
			for i, m := range order {
				pos[m] = i
			}
			for i, m := range order {
				for _, d := range g.depends[m] {
					if j, ok := pos[d]; ok && j > i {
						t.Errorf("%s loads before its dependency %s: %v", m, d, order)
					}
				}
			}
			again, _, _ := testGraph().loadOrder(tt.want)
			if !slices.Equal(order, again) {
				t.Errorf("order not stable: %v then %v", order, again)
			}
		})
	}
}

func TestModuleGraphReportsUnreadDependencies(t *testing.T) {
	g := testGraph()
	delete(g.depends, "net_failover")
	unread, err := g.unread([]string{"virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unread, []string{g.paths["net_failover"]}) {
		t.Errorf("unread = %v, want only net_failover's path", unread)
	}
	if _, _, err := g.loadOrder([]string{"virtio_net"}); err == nil {
		t.Error("loadOrder succeeded with a dependency whose modinfo was never read")
	}
}
