package build

import (
	"io"
	"os"
	"path/filepath"
)

// DefaultPrefix is the repository part of every image the builder makes. Nothing is ever pushed
// or pulled under it: images reach kind nodes by `docker save` and a containerd import.
const DefaultPrefix = "pxec.local"

// Options is what every target of the builder receives.
type Options struct {
	// Cache holds downloads, root filesystems and build trees between runs ($PXEC_CACHE).
	Cache string
	// Prefix is the image repository prefix, DefaultPrefix when empty.
	Prefix string
	// Log receives the full output of every command; progress lines go to Progress.
	Log io.Writer
	// Progress reports each step.
	Progress *Progress
	// Force rebuilds even when an image with the same inputs exists.
	Force bool
	// CPU, when set, runs the compiling steps of targets built side by side one at a time
	// (Concurrently sets it).
	CPU *Gate
}

// CacheDir returns the cache directory: $PXEC_CACHE, else $XDG_CACHE_HOME/pxe-conformance, else
// ~/.cache/pxe-conformance.
func CacheDir() string {
	if d := os.Getenv("PXEC_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "pxe-conformance")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "pxe-conformance")
	}
	return filepath.Join(home, ".cache", "pxe-conformance")
}

// Image returns the full name of a component image: <prefix>/<name>:<tag>.
func (o Options) Image(name, tag string) string {
	p := o.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	return p + "/" + name + ":" + tag
}
