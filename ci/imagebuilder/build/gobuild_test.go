package build

import (
	"strings"
	"testing"
)

func TestGoModKeepsEveryToolOnce(t *testing.T) {
	g := GoBuild{
		Name:    "x",
		Require: map[string]string{"example.com/m": "v1.0.0"},
		Replace: map[string]string{"example.com/dep": "example.com/dep v0.1.0"},
		Bins:    map[string]string{"a": "example.com/m/cmd/a", "a2": "example.com/m/cmd/a", "b": "example.com/m/cmd/b", "own": "pxec.local/build/x/cmd/own"},
		Files:   map[string]string{"cmd/own/main.go": "package main\n"},
	}
	s := g.GoMod()
	for _, want := range []string{"module pxec.local/build/x\n", "\texample.com/m v1.0.0\n", "\texample.com/dep => example.com/dep v0.1.0\n", "tool example.com/m/cmd/b\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("wrapper go.mod lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "tool example.com/m/cmd/a\n") != 1 {
		t.Errorf("tool directive repeated:\n%s", s)
	}
	if strings.Contains(s, "tool pxec.local/build/x/") {
		t.Errorf("tool directive for the wrapper's own package:\n%s", s)
	}
	if g.Inputs("go1.26") == g.Inputs("go1.27") {
		t.Error("cache key ignores the Go version")
	}
	other := g
	other.Files = map[string]string{"cmd/own/main.go": "package main // changed\n"}
	if g.Inputs("go1.26") == other.Inputs("go1.26") {
		t.Error("cache key ignores the wrapper's own files")
	}
}

func TestBuildCommandsShareOneGoBuildWhenNamesMatchPackages(t *testing.T) {
	same := GoBuild{Ldflags: "-s", Bins: map[string]string{"kubectl": "k8s.io/kubernetes/cmd/kubectl", "kubeadm": "k8s.io/kubernetes/cmd/kubeadm"}}
	got := same.buildCommands("/out")
	if len(got) != 1 || got[0][len(got[0])-3] != "/out/" || got[0][len(got[0])-1] != "k8s.io/kubernetes/cmd/kubectl" {
		t.Errorf("one build expected, got %q", got)
	}
	renamed := GoBuild{Ldflags: "-s", Bins: map[string]string{"etcd": "go.etcd.io/etcd/server/v3", "x": "example.com/x"}}
	got = renamed.buildCommands("/out")
	if len(got) != 2 || got[0][len(got[0])-2] != "/out/etcd" || got[0][len(got[0])-1] != "go.etcd.io/etcd/server/v3" {
		t.Errorf("one build per binary expected, got %q", got)
	}
}
