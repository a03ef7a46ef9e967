package config

import (
	"flag"
	"os"
	"testing"
)

// TestMain defines the --pxec.* flags on this test binary too: `go test ./suites/... -args
// --pxec.mac=...` hands the flags to every package's test binary, and one that did not know them
// would fail the run.
func TestMain(m *testing.M) {
	RegisterFlags(flag.CommandLine)
	flag.Parse()
	os.Exit(m.Run())
}
