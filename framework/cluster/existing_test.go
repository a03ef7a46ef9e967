package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExistingNamesTheKubeconfigItCannotUse(t *testing.T) {
	dir := t.TempDir()
	// Port 1 on loopback refuses at once: nothing leaves the host.
	unreachable := filepath.Join(dir, "unreachable")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: other, context: {cluster: c, user: u}}]
current-context: other
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, path string }{
		{"missing file", filepath.Join(dir, "absent")},
		{"unreachable server", unreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := Existing(ctx, tc.path)
			if err == nil || c != nil {
				t.Fatalf("Existing = %v, %v; want nil and an error", c, err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
		})
	}
}
