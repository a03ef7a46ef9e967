// Package prereq is what a test does when the machine lacks something it needs (root, QEMU,
// chromium, network namespaces): it skips on a developer's machine and fails under CI=true,
// where a skip would hide a missing install step.
package prereq

import (
	"fmt"
	"os"
	"testing"
)

// Missing skips t saying what is missing, or fails it under CI=true.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, cannot skip: %s", reason)
		return
	}
	t.Skip(reason)
}

// Missingf is Missing with a formatted reason.
func Missingf(t testing.TB, format string, args ...any) {
	t.Helper()
	Missing(t, fmt.Sprintf(format, args...))
}
