package config

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	c.ArtifactsDir = t.TempDir()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if c.MAC != "de:00:00:00:00:de" || c.Bridge != "br1" || c.VLAN != 0 {
		t.Errorf("defaults mac=%q bridge=%q vlan=%d, want the documented de:00:00:00:00:de, br1, no VLAN", c.MAC, c.Bridge, c.VLAN)
	}
}

func TestForEmulationScalesEveryTimeoutAndCopies(t *testing.T) {
	c := Default()
	c.EmulationScale = 2.5
	got := c.ForEmulation()
	want := c.Timeouts
	for _, f := range want.fields() {
		*f.value = *f.value * 5 / 2
	}
	if got.Timeouts != want {
		t.Errorf("ForEmulation().Timeouts = %+v, want %+v", got.Timeouts, want)
	}
	if c.Timeouts.SSH != Default().Timeouts.SSH {
		t.Errorf("ForEmulation changed the receiver's timeouts")
	}
	got.Firmware[0] = "changed"
	if c.Firmware[0] == "changed" {
		t.Errorf("ForEmulation's copy shares the firmware list with the receiver")
	}
}

func TestScaleByOneKeepsTimeouts(t *testing.T) {
	d := Default().Timeouts
	if got := d.Scale(1); got != d {
		t.Errorf("Scale(1) = %+v, want %+v", got, d)
	}
}

func TestTimeoutsJSONRoundTrip(t *testing.T) {
	in := Timeouts{VMIRunning: 90 * time.Second, DHCP: time.Minute, PXEBoot: 2 * time.Second, GuestReady: time.Hour,
		SSH: time.Millisecond, ConsoleLogin: 3 * time.Minute, Cleanup: 7 * time.Second}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Timeouts
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	if out != in {
		t.Errorf("round trip through %s = %+v, want %+v", data, out, in)
	}
}

func TestNamespaceGenerateNameEndsInDash(t *testing.T) {
	c := Default()
	c.Namespace = "vendor-x"
	if got := c.NamespaceGenerateName(); got != "vendor-x-" {
		t.Errorf("NamespaceGenerateName() = %q, want %q", got, "vendor-x-")
	}
}

func TestEnvNameSplitsCamelCase(t *testing.T) {
	tests := []struct{ key, want string }{
		{"mac", "PXEC_MAC"},
		{"keepOnFailure", "PXEC_KEEP_ON_FAILURE"},
		{"artifactsDir", "PXEC_ARTIFACTS_DIR"},
		{"images.pxeServer", "PXEC_IMAGES_PXE_SERVER"},
		{"timeouts.vmiRunning", "PXEC_TIMEOUTS_VMI_RUNNING"},
		{"timeouts.dhcp", "PXEC_TIMEOUTS_DHCP"},
		{"config", "PXEC_CONFIG"},
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
	data, err := json.Marshal(Default())
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
	for _, s := range settings() {
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
	src := Config{MAC: "02:00:00:00:00:01", Bridge: "pxebr", VLAN: 100, Namespace: "ns", Firmware: []Firmware{EFI},
		Kubeconfig: "/k", KeepOnFailure: true, ArtifactsDir: "/a", Images: Images{PXEServer: "img:1"},
		Timeouts:       Timeouts{VMIRunning: 1, DHCP: 2, PXEBoot: 3, GuestReady: 4, SSH: 5, ConsoleLogin: 6, Cleanup: 7},
		EmulationScale: 1.5}
	var dst Config
	for _, s := range settings() {
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
