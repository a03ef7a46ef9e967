package kubevirt

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvfixtures "github.com/pxe-conformance/pxe-conformance/fixtures/kubevirt"
)

const testKubeVirtGoMod = `module kubevirt.io/kubevirt

go 1.26.0

require kubevirt.io/virt-template-api v0.2.0

replace (
	github.com/openshift/api => github.com/openshift/api v0.0.0-20210105115604-44119421ec6b
	k8s.io/api => k8s.io/api v0.34.2
	kubevirt.io/api => ./staging/src/kubevirt.io/api
	kubevirt.io/client-go => ./staging/src/kubevirt.io/client-go
)
`

func replaces(t *testing.T, gomod []byte) map[string]string {
	t.Helper()
	f, err := modfile.Parse("go.mod", gomod, nil)
	if err != nil {
		t.Fatalf("generated go.mod does not parse: %v\n%s", err, gomod)
	}
	got := map[string]string{}
	for _, r := range f.Replace {
		got[r.Old.Path] = strings.TrimSpace(r.New.Path + " " + r.New.Version)
	}
	return got
}

func TestRenderGoModRepeatsKubeVirtReplacesAndPublishesStaging(t *testing.T) {
	standins := []kvfixtures.StandinModule{{Path: "kubevirt.io/virt-template-api"}}
	for _, tc := range []struct {
		name, replaceKubevirt string
		want                  map[string]string
	}{
		{"stock", "", map[string]string{
			"github.com/openshift/api":      "github.com/openshift/api v0.0.0-20210105115604-44119421ec6b",
			"k8s.io/api":                    "k8s.io/api v0.34.2",
			"kubevirt.io/api":               "kubevirt.io/api " + Version,
			"kubevirt.io/client-go":         "kubevirt.io/client-go " + Version,
			"kubevirt.io/virt-template-api": "./standin/kubevirt.io/virt-template-api",
		}},
		{"adapted copy", "./kubevirt", map[string]string{
			"github.com/openshift/api":      "github.com/openshift/api v0.0.0-20210105115604-44119421ec6b",
			"k8s.io/api":                    "k8s.io/api v0.34.2",
			"kubevirt.io/api":               "kubevirt.io/api " + Version,
			"kubevirt.io/client-go":         "kubevirt.io/client-go " + Version,
			"kubevirt.io/virt-template-api": "./standin/kubevirt.io/virt-template-api",
			Module:                          "./kubevirt",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gomod, err := renderGoMod([]byte(testKubeVirtGoMod), standins, tc.replaceKubevirt)
			if err != nil {
				t.Fatal(err)
			}
			got := replaces(t, gomod)
			if len(got) != len(tc.want) {
				t.Errorf("replaces %v, want %v", got, tc.want)
			}
			for old, want := range tc.want {
				if got[old] != want {
					t.Errorf("replace %s => %q, want %q", old, got[old], want)
				}
			}
			if !strings.Contains(string(gomod), "require "+Module+" "+Version) {
				t.Errorf("go.mod does not require %s %s:\n%s", Module, Version, gomod)
			}
		})
	}
}

func TestRenderGoModRefusesADirectoryReplaceOutsideKubeVirt(t *testing.T) {
	gomod := "module kubevirt.io/kubevirt\n\ngo 1.26.0\n\nreplace example.com/x => ./third_party/x\n"
	_, err := renderGoMod([]byte(gomod), nil, "")
	if err == nil || !strings.Contains(err.Error(), "example.com/x with directory ./third_party/x") {
		t.Errorf("error %v, want one naming example.com/x and its directory", err)
	}
}

func TestEveryStandinModuleHasSourceAndAGoMod(t *testing.T) {
	for _, s := range kvfixtures.StandinModules() {
		t.Run(s.Path, func(t *testing.T) {
			var goFiles int
			err := fs.WalkDir(kvfixtures.Files(), kvfixtures.StandinDir+"/"+s.Path, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".go") {
					goFiles++
				}
				return err
			})
			if err != nil || goFiles == 0 {
				t.Fatalf("stand-in %s: %d Go files, walk error %v", s.Path, goFiles, err)
			}
			gomod, err := renderStandinGoMod(s)
			if err != nil {
				t.Fatal(err)
			}
			f, err := modfile.Parse("go.mod", gomod, nil)
			if err != nil || f.Module.Mod.Path != s.Path || len(f.Require) != len(s.Require) {
				t.Errorf("stand-in go.mod for %s (parse error %v):\n%s", s.Path, err, gomod)
			}
		})
	}
}

// pinnedModuleDir finds the pinned KubeVirt module in the module cache, without downloading.
func pinnedModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err == nil {
		dir := filepath.Join(strings.TrimSpace(string(out)), Module+"@"+Version)
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	msg := Module + "@" + Version + " is not in the module cache (go mod download " + Module + "@" + Version + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func TestStandinsReplaceExactlyTheModulesKubeVirtRequiresAndTheProxyLacks(t *testing.T) {
	dir := pinnedModuleDir(t)
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for _, r := range f.Require {
		required[r.Mod.Path] = true
	}
	for _, s := range kvfixtures.StandinModules() {
		if !required[s.Path] {
			t.Errorf("stand-in %s: %s %s does not require it any more", s.Path, Module, Version)
		}
	}
}

func TestNoDummyPatchAppliesExactlyToThePinnedKubeVirt(t *testing.T) {
	dir := pinnedModuleDir(t)
	patch, err := fs.ReadFile(kvfixtures.Files(), kvfixtures.NoDummyPatch)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	var touched []string
	for _, line := range strings.Split(string(patch), "\n") {
		if f, ok := strings.CutPrefix(line, "+++ b/"); ok {
			touched = append(touched, f)
		}
	}
	if len(touched) == 0 {
		t.Fatal("patch names no files")
	}
	for _, f := range touched {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if os.IsNotExist(err) {
			continue // a file the patch creates
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(work, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("patch", "-p1", "--batch", "--forward", "--fuzz=0")
	cmd.Dir, cmd.Stdin = work, strings.NewReader(string(patch))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch does not apply to %s %s: %v\n%s", Module, Version, err, out)
	}
	patched, err := os.ReadFile(filepath.Join(work, "pkg/network/driver/nmstate/spec.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"errors.Is(err, unix.EOPNOTSUPP)", "!isDummyStandIn(iface, link)", `dummyStandInAlias = "pxec-nodummy"`, "n.adapter.LinkSetAlias(link, dummyStandInAlias)"} {
		if !strings.Contains(string(patched), want) {
			t.Errorf("patched spec.go lacks %q", want)
		}
	}
}

func TestDeployedImagesUseTheAdaptedHandler(t *testing.T) {
	names := ImageNames(build.Options{})
	deployed := strings.Join(names.Deployed(), " ")
	if !strings.Contains(deployed, "pxec.local/kubevirt/virt-handler:"+NoDummyTag) {
		t.Errorf("deployed %s lacks the adapted handler", deployed)
	}
	if strings.Contains(deployed, names.Handler+" ") || strings.HasSuffix(deployed, names.Handler) {
		t.Errorf("deployed %s includes the stock handler %s", deployed, names.Handler)
	}
	if names.Operator != "pxec.local/kubevirt/virt-operator:"+Version {
		t.Errorf("operator image %s", names.Operator)
	}
}

func TestImageSpecsFollowKubeVirtsLayout(t *testing.T) {
	names := ImageNames(build.Options{})
	specs := imageSpecs(source{Dir: "/kv"}, binaries{Dir: "/bin"}, &binaries{Dir: "/undeployed"}, binaries{Dir: "/nodummy"}, roots{Tiny: "tiny", Virt: "virt"}, names)
	byName := map[string]imageSpec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	for _, tc := range []struct {
		image, base string
		want        []string
	}{
		{names.Operator, "tiny", []string{"USER 1001", `ENTRYPOINT ["/usr/bin/virt-operator"]`}},
		{names.Launcher, "virt", []string{"USER 107", `ENTRYPOINT ["/usr/bin/virt-launcher"]`, "setcap cap_net_bind_service+ep /usr/bin/virt-launcher-monitor", "COPY ctx/7 /usr/bin/node-labeller.sh"}},
		{names.HandlerNoDummy, "virt", []string{`ENTRYPOINT ["/usr/bin/virt-handler"]`, "COPY ctx/1 /usr/bin/virt-chroot"}},
	} {
		s, ok := byName[tc.image]
		if !ok {
			t.Errorf("no spec for %s", tc.image)
			continue
		}
		df := s.dockerfile()
		if !strings.HasPrefix(df, "FROM "+tc.base+"\n") {
			t.Errorf("%s: Dockerfile starts\n%s", tc.image, df)
		}
		for _, w := range tc.want {
			if !strings.Contains(df, w) {
				t.Errorf("%s: Dockerfile lacks %q:\n%s", tc.image, w, df)
			}
		}
	}
	if got := byName[names.HandlerNoDummy].Files[0].From; got != "/nodummy/virt-handler" {
		t.Errorf("adapted handler image copies %s", got)
	}
	if got := byName[names.Handler].Files[0].From; got != "/undeployed/virt-handler" {
		t.Errorf("stock handler image copies %s", got)
	}
	if got := byName[names.ExportServer].Files[0].From; got != "/undeployed/virt-exportserver" {
		t.Errorf("export server image copies %s", got)
	}
}

func TestBuildMakesOnlyTheDeployedImages(t *testing.T) {
	names := ImageNames(build.Options{})
	specs := imageSpecs(source{Dir: "/kv"}, binaries{Dir: "/bin"}, nil, binaries{Dir: "/nodummy"}, roots{Tiny: "tiny", Virt: "virt"}, names)
	var got []string
	for _, s := range specs {
		got = append(got, s.Name)
		for _, f := range s.Files {
			if strings.HasPrefix(f.From, "/bin/") && slices.Contains(undeployedCommands(), "cmd/"+filepath.Base(f.From)) {
				t.Errorf("%s copies %s, which only BuildAll builds", s.Name, f.From)
			}
		}
	}
	slices.Sort(got)
	want := names.Deployed()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("images %q, want the deployed %q", got, want)
	}
	all := names.All()
	if !slices.Contains(all, names.Handler) || !slices.Contains(all, names.ExportServer) || len(all) != 8 {
		t.Errorf("All() = %q", all)
	}
	for _, c := range undeployedCommands() {
		if slices.Contains(deployedCommands(), c) {
			t.Errorf("%s is both deployed and undeployed", c)
		}
	}
}

func TestCheckManifestRefusesUpstreamImages(t *testing.T) {
	names := ImageNames(build.Options{})
	good := "image: " + names.Operator + "\nimagePullPolicy: IfNotPresent\nvalue: " + names.HandlerNoDummy + "\n"
	for _, tc := range []struct{ name, manifest, want string }{
		{"good", good, ""},
		{"quay", good + "image: quay.io/kubevirt/virt-operator:v1.9.0\n", "quay.io"},
		{"no handler", "image: " + names.Operator + "\nimagePullPolicy: IfNotPresent\n", NoDummyTag},
		{"pull always", "image: " + names.Operator + "\nvalue: " + names.HandlerNoDummy + "\n", "IfNotPresent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkManifest([]byte(tc.manifest), names)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

const testOperatorManifest = `---
apiVersion: v1
kind: Namespace
metadata:
  name: kubevirt   # kept byte for byte
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-operator
  namespace: kubevirt
spec:
  template:
    spec:
      containers:
      - name: virt-operator
        image: pxec.local/kubevirt/virt-operator:v1.9.0
        env:
        - name: KUBEVIRT_VERSION
          value: v1.9.0
`

func TestSetHandlerImagePointsTheOperatorAtAnotherHandler(t *testing.T) {
	for _, tc := range []struct {
		name, manifest string
	}{
		{"added", testOperatorManifest},
		{"replaced", strings.Replace(testOperatorManifest, "        - name: KUBEVIRT_VERSION",
			"        - name: VIRT_HANDLER_IMAGE\n          value: quay.io/kubevirt/virt-handler:v1.9.0\n        - name: KUBEVIRT_VERSION", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := setHandlerImage([]byte(tc.manifest), "pxec.local/kubevirt/virt-handler:x")
			if err != nil {
				t.Fatal(err)
			}
			text := string(out)
			if !strings.Contains(text, "name: kubevirt   # kept byte for byte\n") {
				t.Errorf("other documents changed:\n%s", text)
			}
			if strings.Count(text, "VIRT_HANDLER_IMAGE") != 1 || !strings.Contains(text, "value: pxec.local/kubevirt/virt-handler:x") ||
				strings.Contains(text, "quay.io") || !strings.Contains(text, "KUBEVIRT_VERSION") {
				t.Errorf("env not set exactly once:\n%s", text)
			}
		})
	}
}

func TestSetHandlerImageNeedsTheOperatorDeployment(t *testing.T) {
	_, err := setHandlerImage([]byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubevirt\n"), "x")
	if err == nil || !strings.Contains(err.Error(), "no virt-operator Deployment") {
		t.Errorf("error %v, want no virt-operator Deployment", err)
	}
}
