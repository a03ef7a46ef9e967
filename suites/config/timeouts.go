package config

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// timeoutField ties a timeout to its key under "timeouts".
type timeoutField struct {
	key   string
	value *time.Duration
}

// fields lists t's timeouts by key, pointing into t; every piece of code that walks the
// timeouts (file, flags, environment, Validate, Scale) goes through it.
func (t *Timeouts) fields() []timeoutField {
	return []timeoutField{
		{"vmiRunning", &t.VMIRunning},
		{"dhcp", &t.DHCP},
		{"pxeBoot", &t.PXEBoot},
		{"guestReady", &t.GuestReady},
		{"ssh", &t.SSH},
		{"consoleLogin", &t.ConsoleLogin},
		{"cleanup", &t.Cleanup},
	}
}

// MarshalJSON writes each timeout as a Go duration string ("1m30s").
func (t Timeouts) MarshalJSON() ([]byte, error) {
	m := map[string]string{}
	for _, f := range t.fields() {
		m[f.key] = f.value.String()
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
	for _, f := range t.fields() {
		byKey[f.key] = f.value
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
		d, err := parseDuration(s)
		if err != nil {
			return fmt.Errorf("timeouts.%s %q: %w", k, s, err)
		}
		*dst = d
	}
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("not a duration such as \"90s\" or \"5m\"")
	}
	return d, nil
}
