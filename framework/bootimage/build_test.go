package bootimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pxe-conformance/pxe-conformance/fixtures/guest"
)

func TestBuildIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the payload twice from scratch")
	}
	requireAptTools(t)
	buildPayload(t) // fills the shared debs/ for the fresh caches
	var manifests [][]byte
	var initrds [][]byte
	for i := 0; i < 2; i++ {
		p, err := Build(testContext(t), Config{CacheDir: freshCache(t), Logf: t.Logf})
		if err != nil {
			t.Fatalf("Build %d: %v", i, err)
		}
		m, err := os.ReadFile(filepath.Join(p.Dir, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		initrd, err := os.ReadFile(p.Initrd)
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, m)
		initrds = append(initrds, initrd)
	}
	if !bytes.Equal(initrds[0], initrds[1]) {
		t.Error("two builds from the same inputs gave different initramfs bytes")
	}
	if !bytes.Equal(manifests[0], manifests[1]) {
		t.Errorf("two builds from the same inputs gave different manifests:\n%s\n%s", manifests[0], manifests[1])
	}
}

func TestBuildReusesTheCachedPayload(t *testing.T) {
	first := buildPayload(t)
	before, err := os.Stat(first.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	second, err := Build(testContext(t), Config{Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	if err != nil {
		t.Fatal(err)
	}
	if second.Dir != first.Dir {
		t.Errorf("second Build gave %s, first %s", second.Dir, first.Dir)
	}
	after, err := os.Stat(second.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("second Build rewrote the initramfs")
	}
	if len(logs) > 0 {
		t.Errorf("second Build did work: %q", logs)
	}
}

func TestConcurrentBuildsShareOneResult(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the payload from scratch")
	}
	requireAptTools(t)
	buildPayload(t)
	cache := freshCache(t)
	var mu sync.Mutex
	var builds int
	logf := func(f string, a ...any) {
		if strings.Contains(f, "building payload") {
			mu.Lock()
			builds++
			mu.Unlock()
		}
	}
	dirs := make([]string, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := Build(testContext(t), Config{CacheDir: cache, Logf: logf})
			errs[i] = err
			if err == nil {
				dirs[i] = p.Dir
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Build %d: %v", i, err)
		}
	}
	if dirs[0] != dirs[1] || dirs[1] != dirs[2] {
		t.Errorf("concurrent Builds gave %v", dirs)
	}
	if builds != 1 {
		t.Errorf("%d of 3 concurrent Builds built the payload, want 1", builds)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, "bootimage", "*", ".tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestManifestMatchesOutputs(t *testing.T) {
	p := buildPayload(t)
	var names []string
	for _, o := range p.Manifest.Outputs {
		names = append(names, o.Name)
		sum, size, err := fileSHA256(filepath.Join(p.Dir, o.Name))
		if err != nil {
			t.Fatal(err)
		}
		if sum != o.SHA256 || size != o.Size {
			t.Errorf("%s: sha256 %s size %d, manifest says %s %d", o.Name, sum, size, o.SHA256, o.Size)
		}
	}
	slices.Sort(names)
	if want := slices.Sorted(slices.Values([]string{KernelFile, InitrdFile, UndionlyFile, IPXEEFIFile})); !slices.Equal(names, want) {
		t.Errorf("outputs %v, want %v", names, want)
	}
	for _, f := range []string{p.Kernel, p.Initrd, p.Undionly, p.IPXEEFI} {
		if filepath.Dir(f) != p.Dir {
			t.Errorf("%s is not in the payload directory %s", f, p.Dir)
		}
	}
	for _, pkg := range p.Manifest.Packages {
		if pkg.Version == "" || pkg.SHA256 == "" || pkg.Architecture == "" {
			t.Errorf("package without version, architecture or hash: %+v", pkg)
		}
	}
	if !strings.HasPrefix(p.Manifest.KernelRelease, "6.") {
		t.Logf("kernel release %s is not bookworm's 6.1", p.Manifest.KernelRelease)
	}
	t.Logf("kernel %s; packages %v", p.Manifest.KernelRelease, p.Manifest.Packages)
}

// initramfsRecords reads the payload's initramfs with the test's reader.
func initramfsRecords(t *testing.T, p *Payload) map[string]cpioRecord {
	t.Helper()
	data, err := os.ReadFile(p.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]cpioRecord{}
	for _, r := range readCPIO(t, gunzip(t, data)) {
		recs[r.Name] = r
	}
	return recs
}

func TestInitramfsHoldsWhatTheInitRuns(t *testing.T) {
	p := buildPayload(t)
	recs := initramfsRecords(t, p)
	// resolveIn follows symlinks inside the archive, as the guest will.
	resolveIn := func(name string) (cpioRecord, error) {
		for hops := 0; hops < 40; hops++ {
			r, ok := recs[name]
			if !ok {
				return r, fmt.Errorf("%s not in the initramfs", name)
			}
			if r.Mode&0o170000 != cpioTypeSymlink {
				return r, nil
			}
			target := string(r.Data)
			if strings.HasPrefix(target, "/") {
				name = path.Clean(strings.TrimPrefix(target, "/"))
			} else {
				name = path.Join(path.Dir(name), target)
			}
		}
		return cpioRecord{}, fmt.Errorf("%s: symlink loop", name)
	}
	for name, r := range recs {
		if r.Mode&0o170000 == cpioTypeSymlink {
			if _, err := resolveIn(name); err != nil {
				t.Errorf("dangling symlink %s -> %s: %v", name, r.Data, err)
			}
		}
	}
	want := map[string]uint32{ // path: mode (type and permissions)
		"init":                0o100755,
		"bin/busybox":         0o100755,
		"usr/sbin/dropbear":   0o100755,
		"usr/bin/dropbearkey": 0o100755,
		"dev/console":         0o020600,
		"root":                0o040700,
		"tmp":                 0o041777,
	}
	for name, mode := range want {
		if r, ok := recs[name]; !ok || r.Mode != mode {
			t.Errorf("%s: mode %o (present %v), want %o", name, r.Mode, ok, mode)
		}
	}
	applets, err := guest.Applets()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		r, err := resolveIn(a)
		if err != nil || !bytes.Equal(r.Data, recs["bin/busybox"].Data) {
			t.Errorf("applet %s does not lead to bin/busybox: %v", a, err)
		}
	}
	files, err := guest.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if r, ok := recs[f.Path]; !ok || !bytes.Equal(r.Data, f.Data) || r.Mode&0o777 != uint32(f.Mode) {
			t.Errorf("guest file %s missing or changed", f.Path)
		}
	}
	list, ok := recs[guest.ModuleListPath]
	if !ok {
		t.Fatalf("%s missing", guest.ModuleListPath)
	}
	var mods []string
	for _, l := range strings.Fields(string(list.Data)) {
		if _, ok := recs[strings.TrimPrefix(l, "/")]; !ok {
			t.Errorf("module list names %s, which is not in the initramfs", l)
		}
		mods = append(mods, l)
	}
	if len(mods) != len(p.Manifest.Modules) {
		t.Errorf("module list has %d entries, manifest %d", len(mods), len(p.Manifest.Modules))
	}
	for _, uid := range recs {
		if uid.UID != 0 || uid.GID != 0 {
			t.Errorf("%s owned by %d:%d", uid.Name, uid.UID, uid.GID)
		}
	}
}

// The order the init loads modules in must satisfy the real modules'
// modinfo dependencies, read independently here.
func TestInitramfsModulesLoadAfterTheirDependencies(t *testing.T) {
	p := buildPayload(t)
	recs := initramfsRecords(t, p)
	loaded := map[string]bool{}
	builtin := map[string]bool{}
	for _, b := range p.Manifest.BuiltinModules {
		builtin[b] = true
	}
	for _, l := range strings.Fields(string(recs[guest.ModuleListPath].Data)) {
		r := recs[strings.TrimPrefix(l, "/")]
		name, deps, err := parseModinfo(r.Data)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		for _, d := range deps {
			if !loaded[d] && !builtin[d] {
				t.Errorf("%s is loaded before its dependency %s", name, d)
			}
		}
		loaded[name] = true
	}
	for _, m := range DefaultModules() {
		if !loaded[normModule(m)] && !builtin[normModule(m)] {
			t.Errorf("requested module %s is neither loaded nor built in", m)
		}
	}
}

// busybox's cpio is an independent reader of the same format.
func TestBusyboxCPIOListsTheInitramfs(t *testing.T) {
	p := buildPayload(t)
	bb := filepath.Join(unpackedPackages(t, "busybox-static")["busybox-static"], "bin", "busybox")
	data, err := os.ReadFile(p.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bb, "cpio", "-t")
	cmd.Stdin = bytes.NewReader(gunzip(t, data))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("busybox cpio -t: %v", err)
	}
	got := strings.Fields(string(out))
	want := sortedKeys(initramfsRecords(t, p))
	if !slices.Equal(got, want) {
		t.Errorf("busybox cpio lists %d names, our reader %d", len(got), len(want))
	}
}

// fakeApt puts apt-cache, apt-config and apt-get scripts first in PATH. The
// fake apt-cache never knows a package; apt-get counts its updates.
func fakeApt(t *testing.T) (updates func() int) {
	t.Helper()
	dir := t.TempDir()
	count := filepath.Join(dir, "updates")
	scripts := map[string]string{
		"apt-config": "#!/bin/sh\necho \"L='" + dir + "/lists/'\"\n",
		"apt-cache":  "#!/bin/sh\necho 'N: Unable to locate package linux-image-amd64' >&2\necho 'E: No packages found' >&2\nexit 100\n",
		"apt-get":    "#!/bin/sh\n[ \"$2\" = update ] || [ \"$1\" = update ] || exit 1\necho x >> " + count + "\n",
	}
	putFirstInPath(t, dir, scripts)
	return func() int {
		data, _ := os.ReadFile(count)
		return strings.Count(string(data), "x")
	}
}

// putFirstInPath writes each script as an executable named by its key into dir and puts dir
// first in PATH for the test.
func putFirstInPath(t *testing.T, dir string, scripts map[string]string) {
	t.Helper()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestBuildUpdatesAptListsOnceForAnUnknownPackage(t *testing.T) {
	updates := fakeApt(t)
	var logs []string
	_, err := Build(context.Background(), Config{CacheDir: t.TempDir(), Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	if err == nil {
		t.Fatal("Build succeeded with an apt that knows no package")
	}
	if n := updates(); n != 1 {
		t.Errorf("apt-get update ran %d times, want 1", n)
	}
	if !strings.Contains(err.Error(), "apt-cache show --no-all-versions linux-image-amd64") || !strings.Contains(err.Error(), "No packages found") {
		t.Errorf("error lacks the command line or its output: %v", err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "apt-get update") {
		t.Errorf("no log line about apt-get update: %q", logs)
	}
}

func TestCommandLineQuotesForAShell(t *testing.T) {
	tests := []struct {
		cmd  hostCmd
		want string
	}{
		{hostCmd{name: "apt-get", args: []string{"download", "libc6=2.36-9+deb12u14"}}, "apt-get download libc6=2.36-9+deb12u14"},
		{hostCmd{dir: "/tmp/a b", env: []string{"LC_ALL=C"}, name: "dpkg-deb", args: []string{"-x", "it's.deb", ""}}, `cd '/tmp/a b' && LC_ALL=C dpkg-deb -x 'it'\''s.deb' ''`},
	}
	for _, tt := range tests {
		if got := tt.cmd.String(); got != tt.want {
			t.Errorf("String() = %s, want %s", got, tt.want)
		}
		out, err := exec.Command("sh", "-c", "printf '%s|' "+strings.TrimPrefix(tt.cmd.String(), "cd '/tmp/a b' && ")).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Join(append(append(tt.cmd.env, tt.cmd.name), tt.cmd.args...), "|") + "|"
		if string(out) != want {
			t.Errorf("shell splits %s into %q, want %q", tt.cmd, out, want)
		}
	}
}

func TestRemoveStaleTempsKeepsFreshOnes(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{".tmp-old", ".tmp-new", "payload"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{".tmp-old", "payload"} {
		if err := os.Chtimes(filepath.Join(dir, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleTemps(dir, time.Hour)
	for name, want := range map[string]bool{".tmp-old": false, ".tmp-new": true, "payload": true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", name, got, want)
		}
	}
}

func TestBuildReplacesABrokenPayload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the payload from scratch")
	}
	requireAptTools(t)
	buildPayload(t)
	cache := freshCache(t)
	first, err := Build(testContext(t), Config{CacheDir: cache, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(first.Undionly); err != nil {
		t.Fatal(err)
	}
	second, err := Build(testContext(t), Config{CacheDir: cache, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Build after a payload file was deleted: %v", err)
	}
	if sum, _, err := fileSHA256(second.Undionly); err != nil || second.Dir != first.Dir {
		t.Errorf("payload not rebuilt in place: %v (dir %s, was %s, sum %s)", err, second.Dir, first.Dir, sum)
	}
}

// TestBuildWithoutAptTakesASeededPayload: in a container image there is no apt; Build finds
// the payload seeded into its cache, and only one built from the same modules and guest files.
func TestBuildWithoutAptTakesASeededPayload(t *testing.T) {
	built := buildPayload(t)
	seeded := t.TempDir()
	if err := built.Seed(seeded); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	t.Setenv("PATH", t.TempDir()) // no apt-get, apt-cache or apt-config from here on

	p, err := Build(testContext(t), Config{CacheDir: seeded})
	if err != nil {
		t.Fatalf("Build without apt from a seeded cache: %v", err)
	}
	if !strings.HasPrefix(p.Dir, seeded) || p.Manifest.Key != built.Manifest.Key {
		t.Errorf("Build gave %s (key %s), want the seeded copy of %s under %s", p.Dir, p.Manifest.Key, built.Manifest.Key, seeded)
	}
	for _, f := range []string{p.Kernel, p.Initrd, p.Undionly, p.IPXEEFI} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}

	other := append(DefaultModules(), "e1000")
	for name, cfg := range map[string]Config{
		"an empty cache": {CacheDir: t.TempDir()},
		"other modules":  {CacheDir: seeded, Modules: other},
		"another kernel": {CacheDir: seeded, KernelPackage: "linux-image-cloud-amd64"},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := Build(testContext(t), cfg)
			if err == nil {
				t.Fatalf("Build without apt took %s, built from other inputs", p.Dir)
			}
			for _, want := range []string{"apt is not available here", "apt-get", cfg.CacheDir} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}
