package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
)

// Module is what `go mod download -json` reports about one module version, with the version's
// commit time from its .info file.
type Module struct {
	Path, Version string
	Dir           string // the module's root in the (read-only) module cache
	GoMod         string // the path of its go.mod file
	Info          string // the path of its .info file
	Sum           string
	Error         string
	Origin        struct{ Hash string }
	// Time is the version's commit time (RFC 3339), read from Info: the reproducible build
	// date of what is built from it.
	Time string `json:"-"`
}

// Commit is the git commit the proxy recorded for the version, "" when it recorded none.
func (m Module) Commit() string { return m.Origin.Hash }

// DownloadModule fetches mod@version through the Go module proxy, a no-op when the module
// cache holds it already. It runs in dir, which must be outside any module (the cache), so
// that no go.mod is edited; GOWORK is off. Every image builder takes its Go modules from here.
func DownloadModule(ctx context.Context, dir, mod, version string) (Module, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Module{}, fmt.Errorf("download %s@%s: %w", mod, version, err)
	}
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod+"@"+version)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := Output(ctx, cmd)
	var m Module
	if jerr := json.Unmarshal(out, &m); jerr != nil {
		if err != nil {
			return Module{}, fmt.Errorf("download %s@%s: %w", mod, version, err)
		}
		return Module{}, fmt.Errorf("download %s@%s: parse go mod download output: %w", mod, version, jerr)
	}
	if m.Error != "" || m.Dir == "" {
		return Module{}, fmt.Errorf("download %s@%s: %s", mod, version, m.Error)
	}
	if err != nil {
		return Module{}, fmt.Errorf("download %s@%s: %w", mod, version, err)
	}
	info, err := os.ReadFile(m.Info)
	if err != nil {
		return Module{}, fmt.Errorf("download %s@%s: %w", mod, version, err)
	}
	var t struct{ Time string }
	if err := json.Unmarshal(info, &t); err != nil {
		return Module{}, fmt.Errorf("download %s@%s: parse %s: %w", mod, version, m.Info, err)
	}
	m.Time = t.Time
	return m, nil
}
