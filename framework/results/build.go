package results

import "runtime/debug"

// Build is the suite's build: module version and the commit it was built from.
type Build struct {
	Module    string `json:"module"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	CommitAt  string `json:"commitTime,omitzero"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"goVersion"`
}

// unknown stands for what the binary does not record.
const unknown = "unknown"

// ReadBuild reads the running binary's build information. A binary built without version
// control stamping (a test binary: `go test` and ginkgo never stamp) says "unknown".
func ReadBuild() Build {
	b := Build{Module: unknown, Version: unknown, Commit: unknown, GoVersion: unknown}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	if info.Main.Path != "" {
		b.Module = info.Main.Path
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitAt = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}
