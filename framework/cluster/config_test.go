package cluster

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

func TestRenderConfigNodesAndKVMMounts(t *testing.T) {
	base := v1alpha4.Cluster{Nodes: []v1alpha4.Node{
		{Role: v1alpha4.ControlPlaneRole, ExtraMounts: []v1alpha4.Mount{{HostPath: kvmDevice, ContainerPath: kvmDevice}}},
		{Role: v1alpha4.WorkerRole},
	}}
	cases := []struct {
		name      string
		config    *v1alpha4.Cluster
		workers   int
		kvm       bool
		wantRoles []v1alpha4.NodeRole
	}{
		{"default one node", nil, 0, false, []v1alpha4.NodeRole{"control-plane"}},
		{"two workers with kvm", nil, 2, true, []v1alpha4.NodeRole{"control-plane", "worker", "worker"}},
		{"config plus worker", &base, 1, true, []v1alpha4.NodeRole{"control-plane", "worker", "worker"}},
		{"config without kvm", &base, 0, false, []v1alpha4.NodeRole{"control-plane", "worker"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultCreateOptions()
			o.config, o.workers = tc.config, tc.workers
			cfg := renderConfig(o, tc.kvm)
			if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
				t.Errorf("type meta %q %q", cfg.Kind, cfg.APIVersion)
			}
			if len(cfg.Nodes) != len(tc.wantRoles) {
				t.Fatalf("%d nodes, want %d", len(cfg.Nodes), len(tc.wantRoles))
			}
			for i, n := range cfg.Nodes {
				if n.Role != tc.wantRoles[i] {
					t.Errorf("node %d role %q, want %q", i, n.Role, tc.wantRoles[i])
				}
				kvmMounts := 0
				for _, m := range n.ExtraMounts {
					if m.ContainerPath == kvmDevice {
						kvmMounts++
					}
				}
				// A config that already mounts /dev/kvm keeps its one mount.
				wantMounts := 0
				if tc.kvm || (tc.config != nil && i == 0) {
					wantMounts = 1
				}
				if kvmMounts != wantMounts {
					t.Errorf("node %d has %d /dev/kvm mounts, want %d", i, kvmMounts, wantMounts)
				}
			}
		})
	}
}

func TestRenderConfigLeavesCallerConfigAlone(t *testing.T) {
	base := v1alpha4.Cluster{Nodes: []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}}}
	o := defaultCreateOptions()
	if err := WithConfig(base).apply(&o); err != nil {
		t.Fatal(err)
	}
	o.workers = 1
	renderConfig(o, true)
	renderConfig(o, true)
	if len(o.config.Nodes) != 1 || len(o.config.Nodes[0].ExtraMounts) != 0 {
		t.Errorf("renderConfig changed the stored config: %+v", o.config.Nodes)
	}
}

func TestRegistryEndpointsPatchContainerdAndRenderHostsTOML(t *testing.T) {
	o := defaultCreateOptions()
	if patches := renderConfig(o, false).ContainerdConfigPatches; len(patches) != 0 {
		t.Errorf("patches without a registry endpoint: %q", patches)
	}
	if err := WithRegistryEndpoint("127.0.0.1:5000", "http://172.18.0.1:5000").apply(&o); err != nil {
		t.Fatal(err)
	}
	patches := renderConfig(o, false).ContainerdConfigPatches
	if len(patches) != 1 || !strings.Contains(patches[0], `config_path = "/etc/containerd/certs.d"`) {
		t.Fatalf("patches %q, want containerd's registry config_path", patches)
	}
	var patch map[string]any
	if _, err := toml.Decode(patches[0], &patch); err != nil {
		t.Errorf("patch is not TOML: %v\n%s", err, patches[0])
	}
	var hosts struct {
		Host map[string]struct{ Capabilities []string }
	}
	text := registryHosts(o.registries["127.0.0.1:5000"])
	if _, err := toml.Decode(text, &hosts); err != nil {
		t.Fatalf("hosts.toml is not TOML: %v\n%s", err, text)
	}
	h, ok := hosts.Host["http://172.18.0.1:5000"]
	if !ok || strings.Join(h.Capabilities, ",") != "pull,resolve" {
		t.Errorf("hosts.toml %q: want the endpoint as a host for pull and resolve", text)
	}
}
