package config

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

func TestEnvNameSplitsCamelCase(t *testing.T) {
	tests := []struct{ key, want string }{
		{"mac", "PXEC_MAC"},
		{"keepOnFailure", "PXEC_KEEP_ON_FAILURE"},
		{"artifactsDir", "PXEC_ARTIFACTS_DIR"},
		{"images.pxeServer", "PXEC_IMAGES_PXE_SERVER"},
		{"timeouts.vmiRunning", "PXEC_TIMEOUTS_VMI_RUNNING"},
		{"timeouts.dhcp", "PXEC_TIMEOUTS_DHCP"},
		{"config", "PXEC_CONFIG"},
		{"skip.isolation", "PXEC_SKIP_ISOLATION"},
		{"bridge.create", "PXEC_BRIDGE_CREATE"},
	}
	for _, tt := range tests {
		if got := envName(tt.key); got != tt.want {
			t.Errorf("envName(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// TestSettingsCoverEveryField keeps flags and environment variables in step with the file
// format: every JSON field of Config has exactly one setting and the reverse.
func TestSettingsCoverEveryField(t *testing.T) {
	data, err := json.Marshal(settings.Default())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var fields []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			fields = append(fields, prefix+k)
		}
	}
	walk("", m)
	var keys []string
	for _, s := range allSettings() {
		keys = append(keys, s.key)
	}
	sort.Strings(fields)
	sort.Strings(keys)
	if !slices.Equal(fields, keys) {
		t.Errorf("Config's JSON fields %q differ from the settings' keys %q", fields, keys)
	}
}

// TestSettingsRoundTrip checks each setting's parser against its printer on a changed config.
func TestSettingsRoundTrip(t *testing.T) {
	src := settings.Config{MAC: "02:00:00:00:00:01", Bridge: "pxebr", BridgeCreate: settings.BridgeByNNCP, VLAN: 100, Namespace: "ns", Firmware: []firmware.Firmware{firmware.EFI},
		Kubeconfig: "/k", KeepOnFailure: true, Skip: settings.Skip{Isolation: true, VLAN: true}, ArtifactsDir: "/a", Images: settings.Images{PXEServer: "img:1"},
		Timeouts: settings.Timeouts{VMIRunning: 1, BootMenu: 2, IPXE: 3, Screenshot: 4, DHCP: 5, PXEBoot: 6, GuestReady: 7, SSH: 8,
			ConsoleLogin: 9, PXEServer: 10, NodeProbe: 11, Cleanup: 12, NodeNetwork: 13},
		EmulationScale: 1.5}
	var dst settings.Config
	for _, s := range allSettings() {
		if err := s.set(&dst, s.get(&src)); err != nil {
			t.Fatalf("setting %s: set(%q): %v", s.key, s.get(&src), err)
		}
	}
	a, _ := json.Marshal(src)
	b, _ := json.Marshal(dst)
	if string(a) != string(b) {
		t.Errorf("settings copied %s\ninto %s", a, b)
	}
}
