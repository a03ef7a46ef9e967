package settings

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// TimeoutField is one timeout: its key under "timeouts", a phrase saying what it bounds, and
// where its value lives.
type TimeoutField struct {
	Key, Usage string
	Value      *time.Duration
}

// Fields lists t's timeouts by key, pointing into t; everything that walks the timeouts (the
// file, flags and environment, Validate, Scale, Spec) goes through it.
func (t *Timeouts) Fields() []TimeoutField {
	return []TimeoutField{
		{"vmiRunning", "VMI creation to Running (lab: QEMU start to the firmware's first words)", &t.VMIRunning},
		{"bootMenu", "the firmware's boot menu prompt after unpausing (answered to boot at once)", &t.BootMenu},
		{"ipxe", "Running to iPXE opening the bridge interface", &t.IPXE},
		{"screenshot", "capturing a boot screen that is not blank", &t.Screenshot},
		{"dhcp", "iPXE opening the interface to the PXE server's DHCP answer", &t.DHCP},
		{"pxeBoot", "DHCP answer to kernel and initramfs served", &t.PXEBoot},
		{"guestReady", "payload served to the guest's ready line", &t.GuestReady},
		{"ssh", "an SSH login to the guest, and each command over it", &t.SSH},
		{"consoleLogin", "a root login on the serial console", &t.ConsoleLogin},
		{"pxeServer", "the PXE server pod's creation to serving", &t.PXEServer},
		{"nodeProbe", "one command on a node (a probe pod's whole life)", &t.NodeProbe},
		{"cleanup", "deleting what a spec created", &t.Cleanup},
		{"nodeNetwork", "a NodeNetworkConfigurationPolicy Available on every node, or the nodes' NodeNetworkStates showing the change", &t.NodeNetwork},
	}
}

// MarshalJSON writes each timeout as a Go duration string ("1m30s").
func (t Timeouts) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	for _, f := range t.Fields() {
		m[f.Key] = f.Value.String()
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads timeouts written as Go duration strings ("90s", "5m"), changing only the
// ones present, so a file can set one timeout and keep the others' defaults.
func (t *Timeouts) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("timeouts: %w", err)
	}
	byKey := map[string]*time.Duration{}
	for _, f := range t.Fields() {
		byKey[f.Key] = f.Value
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst, ok := byKey[k]
		if !ok {
			return fmt.Errorf("timeouts.%s: unknown timeout", k)
		}
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			return fmt.Errorf("timeouts.%s %s: not a duration string such as \"90s\"", k, m[k])
		}
		d, err := ParseDuration(s)
		if err != nil {
			return fmt.Errorf("timeouts.%s %q: %w", k, s, err)
		}
		*dst = d
	}
	return nil
}

// ParseDuration reads a Go duration ("90s", "5m") with an error that says what is wanted.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration such as \"90s\" or \"5m\"")
	}
	return d, nil
}
