package settings

import (
	"encoding/json"
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
	for _, f := range want.Fields() {
		*f.Value = *f.Value * 5 / 2
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

func TestSpecBoundCoversEveryStep(t *testing.T) {
	tm := Default().Timeouts
	var sum time.Duration
	for _, f := range tm.Fields() {
		if *f.Value <= 0 || *f.Value >= tm.Spec() {
			t.Errorf("timeouts.%s = %s, not a part of Spec() = %s", f.Key, *f.Value, tm.Spec())
		}
		sum += *f.Value
	}
	if tm.Spec() != sum {
		t.Errorf("Spec() = %s, want the sum %s", tm.Spec(), sum)
	}
}
