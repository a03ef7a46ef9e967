package kubevirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsRejectBadValuesNamingFieldAndValue(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  Option
		want string
	}{
		{"namespace", WithNamespace("Not_A_Label"), `namespace "Not_A_Label"`},
		{"name", WithName("bad name"), `name "bad name"`},
		{"available timeout", WithAvailableTimeout(-time.Second), "available timeout -1s: must be positive"},
		{"delete timeout", WithDeleteTimeout(0), "delete timeout 0s: must be positive"},
		{"manifest", WithOperatorManifest(nil), "operator manifest: empty"},
		{"manifest file missing", WithOperatorManifestFile(missing), `operator manifest file "` + missing + `"`},
		{"manifest file empty", WithOperatorManifestFile(empty), `operator manifest file "` + empty + `": empty`},
		{"progress", WithProgress(nil), "progress writer: nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultOptions()
			err := tc.opt.apply(&o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOptionsSetWhatTheyName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "op.yaml")
	if err := os.WriteFile(path, []byte(testManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	o := defaultOptions()
	for _, opt := range []Option{
		WithNamespace("kv"), WithName("kv1"), WithEmulation(false),
		WithAvailableTimeout(time.Minute), WithDeleteTimeout(2 * time.Minute), WithOperatorManifestFile(path),
	} {
		if err := opt.apply(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.namespace != "kv" || o.name != "kv1" || o.emulation == nil || *o.emulation ||
		o.availableTimeout != time.Minute || o.deleteTimeout != 2*time.Minute ||
		string(o.manifest) != testManifest || o.manifestSource != path {
		t.Errorf("options not applied: %+v", o)
	}
}
