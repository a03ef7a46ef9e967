package config

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// load runs what a test binary does: register the flags, parse args, Load with env.
func load(t *testing.T, args []string, env map[string]string) (settings.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.Load(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrecedence(t *testing.T) {
	yamlFile := writeFile(t, "pxec.yaml", `
mac: "02:00:00:00:00:0f"
bridge: filebr
vlan: 10
firmware: [efi]
artifactsDir: /from/file
timeouts:
  ssh: 90s
`)
	jsonFile := writeFile(t, "pxec.json", `{"mac": "02:00:00:00:00:0a", "images": {"pxeServer": "json:1"}, "keepOnFailure": true}`)
	otherFile := writeFile(t, "other.yaml", "bridge: otherbr\n")

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *settings.Config)
	}{
		{name: "defaults", want: func(*settings.Config) {}},
		{name: "ARTIFACTS sets the artifacts directory", env: map[string]string{"ARTIFACTS": "/ci/artifacts"},
			want: func(c *settings.Config) { c.ArtifactsDir = "/ci/artifacts" }},
		{name: "file overrides defaults and ARTIFACTS, keeps what it does not set",
			args: []string{"--pxec.config=" + yamlFile}, env: map[string]string{"ARTIFACTS": "/ci/artifacts"},
			want: func(c *settings.Config) {
				c.MAC, c.Bridge, c.VLAN, c.Firmware, c.ArtifactsDir = "02:00:00:00:00:0f", "filebr", 10, []firmware.Firmware{firmware.EFI}, "/from/file"
				c.Timeouts.SSH = 90 * time.Second
			}},
		{name: "JSON file", env: map[string]string{"PXEC_CONFIG": jsonFile},
			want: func(c *settings.Config) {
				c.MAC, c.Images.PXEServer, c.KeepOnFailure = "02:00:00:00:00:0a", "json:1", true
			}},
		{name: "the config flag overrides PXEC_CONFIG", args: []string{"--pxec.config", otherFile}, env: map[string]string{"PXEC_CONFIG": yamlFile},
			want: func(c *settings.Config) { c.Bridge = "otherbr" }},
		{name: "env overrides file", args: []string{"--pxec.config=" + yamlFile},
			env: map[string]string{"PXEC_BRIDGE": "envbr", "PXEC_TIMEOUTS_SSH": "2m", "PXEC_FIRMWARE": "efi, bios"},
			want: func(c *settings.Config) {
				c.MAC, c.Bridge, c.VLAN, c.Firmware, c.ArtifactsDir = "02:00:00:00:00:0f", "envbr", 10, []firmware.Firmware{firmware.EFI, firmware.BIOS}, "/from/file"
				c.Timeouts.SSH = 2 * time.Minute
			}},
		{name: "PXEC_ARTIFACTS_DIR overrides ARTIFACTS", env: map[string]string{"ARTIFACTS": "/a", "PXEC_ARTIFACTS_DIR": "/b"},
			want: func(c *settings.Config) { c.ArtifactsDir = "/b" }},
		{name: "empty env values count as unset", env: map[string]string{"PXEC_MAC": "", "PXEC_VLAN": ""},
			want: func(*settings.Config) {}},
		{name: "flags override env", args: []string{"--pxec.bridge=flagbr", "--pxec.vlan=200", "--pxec.timeouts.vmiRunning=10m"},
			env: map[string]string{"PXEC_BRIDGE": "envbr", "PXEC_VLAN": "100", "PXEC_NAMESPACE": "envns"},
			want: func(c *settings.Config) {
				c.Bridge, c.VLAN, c.Namespace = "flagbr", 200, "envns"
				c.Timeouts.VMIRunning = 10 * time.Minute
			}},
		{name: "a repeated flag: the last wins", args: []string{"--pxec.mac=02:00:00:00:00:01", "--pxec.mac=02:00:00:00:00:02"},
			want: func(c *settings.Config) { c.MAC = "02:00:00:00:00:02" }},
		{name: "a flag may set a value back to empty", args: []string{"--pxec.kubeconfig="}, env: map[string]string{"PXEC_KUBECONFIG": "/k"},
			want: func(*settings.Config) {}},
		{name: "bool flag without value", args: []string{"--pxec.keepOnFailure"},
			want: func(c *settings.Config) { c.KeepOnFailure = true }},
		{name: "bool flag false overrides env true", args: []string{"--pxec.keepOnFailure=false"}, env: map[string]string{"PXEC_KEEP_ON_FAILURE": "true"},
			want: func(*settings.Config) {}},
		{name: "skip switches from a flag and env", args: []string{"--pxec.skip.isolation"}, env: map[string]string{"PXEC_SKIP_VLAN": "true"},
			want: func(c *settings.Config) { c.Skip = settings.Skip{Isolation: true, VLAN: true} }},
		{name: "bridge.create from a file beside bridge", args: []string{"--pxec.config=" + writeFile(t, "nncp.yaml", "bridge: pxebr\nbridge.create: nncp\n")},
			want: func(c *settings.Config) { c.Bridge, c.BridgeCreate = "pxebr", settings.BridgeByNNCP }},
		{name: "bridge.create from env and flag", args: []string{"--pxec.bridge.create="}, env: map[string]string{"PXEC_BRIDGE_CREATE": "nncp", "PXEC_TIMEOUTS_NODE_NETWORK": "5m"},
			want: func(c *settings.Config) { c.Timeouts.NodeNetwork = 5 * time.Minute }},
		{name: "bridge.create from env", env: map[string]string{"PXEC_BRIDGE_CREATE": "nncp"},
			want: func(c *settings.Config) { c.BridgeCreate = settings.BridgeByNNCP }},
		{name: "every kind of value from env", env: map[string]string{
			"PXEC_KUBECONFIG": "/k", "PXEC_KEEP_ON_FAILURE": "1", "PXEC_IMAGES_PXE_SERVER": "r/p:2", "PXEC_EMULATION_SCALE": "4.5",
			"PXEC_TIMEOUTS_CLEANUP": "30s"},
			want: func(c *settings.Config) {
				c.Kubeconfig, c.KeepOnFailure, c.Images.PXEServer, c.EmulationScale = "/k", true, "r/p:2", 4.5
				c.Timeouts.Cleanup = 30 * time.Second
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := settings.Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadRefusesWhatItCannotParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string // content of the --pxec.config file, when set
		wantErr string
	}{
		{name: "env integer", env: map[string]string{"PXEC_VLAN": "ten"}, wantErr: `PXEC_VLAN "ten": not an integer`},
		{name: "env bool", env: map[string]string{"PXEC_KEEP_ON_FAILURE": "sure"}, wantErr: `PXEC_KEEP_ON_FAILURE "sure": not a boolean`},
		{name: "env duration", env: map[string]string{"PXEC_TIMEOUTS_GUEST_READY": "60"}, wantErr: `PXEC_TIMEOUTS_GUEST_READY "60": not a duration`},
		{name: "env number", env: map[string]string{"PXEC_EMULATION_SCALE": "x3"}, wantErr: `PXEC_EMULATION_SCALE "x3": not a number`},
		{name: "flag duration", args: []string{"--pxec.timeouts.ssh=soon"}, wantErr: `flag --pxec.timeouts.ssh "soon": not a duration`},
		{name: "flag integer", args: []string{"--pxec.vlan=1e2"}, wantErr: `flag --pxec.vlan "1e2": not an integer`},
		{name: "misspelt key in the file", file: "mca: 02:00:00:00:00:01\n", wantErr: `unknown field "mca"`},
		{name: "misspelt timeout in the file", file: "timeouts: {shh: 1m}\n", wantErr: `timeouts.shh: unknown timeout`},
		{name: "timeout in the file without unit", file: "timeouts: {ssh: 60}\n", wantErr: `timeouts.ssh 60: not a duration string`},
		{name: "bad duration in the file", file: "timeouts: {ssh: 1 minute}\n", wantErr: `timeouts.ssh "1 minute": not a duration`},
		{name: "wrong type in the file", file: "vlan: ten\n", wantErr: `Config.vlan of type int`},
		{name: "missing file", args: []string{"--pxec.config=/nonexistent/pxec.yaml"}, wantErr: `read config file: open /nonexistent/pxec.yaml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(args, "--pxec.config="+writeFile(t, "pxec.yaml", tt.file))
			}
			_, err := load(t, args, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRegisterFlagsPrefixesEveryFlag(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.HasPrefix(f.Name, FlagPrefix) {
			t.Errorf("flag %q lacks the %q prefix", f.Name, FlagPrefix)
		}
	})
	if want := len(allSettings()) + 1; n != want {
		t.Errorf("registered %d flags, want %d (every setting and pxec.config)", n, want)
	}
}
