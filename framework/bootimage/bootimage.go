package bootimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pxe-conformance/pxe-conformance/fixtures/guest"
)

// formatVersion is part of every cache key; bump it when the builder's output
// changes for the same inputs.
const formatVersion = "pxec-bootimage/1"

// Names of the files in a payload directory; the PXE server serves them
// under these names.
const (
	KernelFile   = "vmlinuz"
	InitrdFile   = "initrd.img"
	UndionlyFile = "undionly.kpxe"
	IPXEEFIFile  = "ipxe.efi"
	ManifestFile = "manifest.json"
)

// Config selects what Build builds and where it caches; the zero value builds
// the suite's standard payload into the default cache.
type Config struct {
	// CacheDir holds downloaded packages (debs/), unpacked packages
	// (unpacked/) and finished payloads (payloads/); empty means
	// DefaultCacheDir.
	CacheDir string
	// KernelPackage is the metapackage whose dependency names the kernel
	// package; empty means linux-image-amd64.
	KernelPackage string
	// Modules are the kernel modules the guest loads, dependencies
	// added; nil means DefaultModules.
	Modules []string
	// Logf receives a line for each slow or unusual step (downloads, apt-get
	// update); nil discards them.
	Logf func(format string, args ...any)
}

// Payload is a built guest payload: a directory holding the files the PXE
// server serves.
type Payload struct {
	// Dir is the payload directory, shared by every Build with the same
	// inputs: treat it as read-only.
	Dir string
	// Kernel is the path of the kernel image (Dir/vmlinuz).
	Kernel string
	// Initrd is the path of the initramfs (Dir/initrd.img).
	Initrd string
	// Undionly is the path of iPXE for BIOS PXE stacks (Dir/undionly.kpxe).
	Undionly string
	// IPXEEFI is the path of iPXE for UEFI PXE stacks (Dir/ipxe.efi).
	IPXEEFI string
	// Manifest describes the inputs and outputs; it is Dir/manifest.json.
	Manifest Manifest
}

// Manifest records what a payload was built from and the hash of each output.
type Manifest struct {
	// Key is the cache key: a hash of every input.
	Key string `json:"key"`
	// KernelRelease is the kernel's uname -r.
	KernelRelease string `json:"kernelRelease"`
	// Packages are the Debian packages used, sorted by name.
	Packages []Package `json:"packages"`
	// Modules are the loadable modules the init inserts, in that order.
	Modules []string `json:"modules"`
	// BuiltinModules are requested modules the kernel has built in.
	BuiltinModules []string `json:"builtinModules,omitempty"`
	// GuestSHA256 is a hash of the fixtures/guest files and applet list.
	GuestSHA256 string `json:"guestSHA256"`
	// Outputs are the payload's files other than the manifest, by name.
	Outputs []Output `json:"outputs"`
}

// Output is one file of a payload.
type Output struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// DefaultCacheDir returns $PXEC_CACHE, else $XDG_CACHE_HOME/pxe-conformance,
// else ~/.cache/pxe-conformance.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("PXEC_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find cache directory: %w", err)
	}
	return filepath.Join(d, "pxe-conformance"), nil
}

// Build returns the payload for cfg, building it on the first call for a set
// of inputs (package versions, module list, guest files) and reading it from
// the cache afterwards. Packages come from the host's apt sources with
// `apt-get download` and are never installed. If apt does not know a package,
// Build runs `apt-get update` once and tries again.
func Build(ctx context.Context, cfg Config) (*Payload, error) {
	b, err := newBuilder(cfg)
	if err != nil {
		return nil, err
	}
	p, err := b.build(ctx)
	if errors.Is(err, errAptUnknown) {
		b.logf("bootimage: %v", err)
		b.logf("bootimage: running apt-get update once and retrying")
		if err := b.aptUpdate(ctx); err != nil {
			return nil, fmt.Errorf("build guest payload: %w", err)
		}
		p, err = b.build(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("build guest payload: %w", err)
	}
	return p, nil
}

// builder holds one Build's settings.
type builder struct {
	cache   string
	kernel  string
	modules []string
	logf    func(format string, args ...any)
	apt     apt
}

func newBuilder(cfg Config) (*builder, error) {
	b := &builder{cache: cfg.CacheDir, kernel: cfg.KernelPackage, modules: cfg.Modules, logf: cfg.Logf}
	if b.cache == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		b.cache = d
	}
	abs, err := filepath.Abs(b.cache)
	if err != nil {
		return nil, fmt.Errorf("find cache directory %s: %w", b.cache, err)
	}
	b.cache = abs
	if b.kernel == "" {
		b.kernel = "linux-image-amd64"
	}
	if b.modules == nil {
		b.modules = DefaultModules()
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	b.apt = apt{logf: b.logf}
	return b, nil
}

// The cache: .debs in debs/ (named as apt-get download names them, so other
// tools may share them); everything else of ours under bootimage/.
func (b *builder) debsDir() string     { return filepath.Join(b.cache, "debs") }
func (b *builder) ownDir() string      { return filepath.Join(b.cache, "bootimage") }
func (b *builder) unpackedDir() string { return filepath.Join(b.ownDir(), "unpacked") }
func (b *builder) payloadsDir() string { return filepath.Join(b.ownDir(), "payloads") }
func (b *builder) plansDir() string    { return filepath.Join(b.ownDir(), "plans") }
func (b *builder) lockPath() string    { return filepath.Join(b.ownDir(), "lock") }

// aptUpdate runs apt-get update under the cache lock, so that two processes
// sharing the cache do not race for apt's own lock.
func (b *builder) aptUpdate(ctx context.Context) error {
	if err := os.MkdirAll(b.ownDir(), 0o755); err != nil {
		return fmt.Errorf("create cache %s: %w", b.cache, err)
	}
	l, err := lockFile(ctx, b.lockPath())
	if err != nil {
		return err
	}
	defer l.unlock()
	return b.apt.update(ctx)
}

// plan is the pinned set of packages one payload is built from.
type plan struct {
	Kernel   Package   `json:"kernel"`
	Busybox  Package   `json:"busybox"`
	Dropbear []Package `json:"dropbear"` // dropbear-bin and its dependency closure
	IPXE     Package   `json:"ipxe"`
}

func (p plan) all() []Package {
	all := append([]Package{p.Kernel, p.Busybox, p.IPXE}, p.Dropbear...)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	return all
}

// resolve pins every package to the candidate version apt offers now,
// reusing the last answer while apt's state is unchanged.
func (b *builder) resolve(ctx context.Context) (plan, error) {
	state, err := b.apt.stateDigest(ctx)
	if err != nil {
		return plan{}, err
	}
	h := sha256.Sum256([]byte(formatVersion + "\n" + b.kernel + "\n" + state))
	file := filepath.Join(b.plansDir(), hex.EncodeToString(h[:])+".json")
	var p plan
	if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &p) == nil && p.Kernel.Version != "" {
		return p, nil
	}
	p, err = b.resolveWithApt(ctx)
	if err != nil {
		return plan{}, err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return plan{}, fmt.Errorf("encode package plan: %w", err)
	}
	if err := writeFileAtomic(file, data); err != nil {
		return plan{}, err
	}
	return p, nil
}

// resolveWithApt asks apt-cache for the candidate versions.
func (b *builder) resolveWithApt(ctx context.Context) (plan, error) {
	kernel, err := b.apt.kernelPackage(ctx, b.kernel)
	if err != nil {
		return plan{}, err
	}
	dropbear, err := b.apt.dependsClosure(ctx, "dropbear-bin")
	if err != nil {
		return plan{}, err
	}
	names := append([]string{kernel, "busybox-static", "ipxe"}, dropbear...)
	recs, err := b.apt.show(ctx, names...)
	if err != nil {
		return plan{}, err
	}
	p := plan{Kernel: recs[kernel].pkg(), Busybox: recs["busybox-static"].pkg(), IPXE: recs["ipxe"].pkg()}
	for _, n := range dropbear {
		p.Dropbear = append(p.Dropbear, recs[n].pkg())
	}
	return p, nil
}

// guestInputs reads the fixtures/guest content and its digest.
func guestInputs() ([]guest.File, []string, string, error) {
	files, err := guest.Files()
	if err != nil {
		return nil, nil, "", err
	}
	applets, err := guest.Applets()
	if err != nil {
		return nil, nil, "", err
	}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "file %s %o %x\n", f.Path, f.Mode, sha256.Sum256(f.Data))
	}
	for _, a := range applets {
		fmt.Fprintf(h, "applet %s\n", a)
	}
	return files, applets, hex.EncodeToString(h.Sum(nil)), nil
}

// key hashes every input of a payload: its packages sorted by name (plan.all), the modules
// and the guest files.
func (b *builder) key(pkgs []Package, guestDigest string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nkernel-metapackage %s\n", formatVersion, b.kernel)
	for _, pkg := range pkgs {
		fmt.Fprintf(h, "package %s %s %s %s\n", pkg.Name, pkg.Version, pkg.Architecture, pkg.SHA256)
	}
	for _, m := range b.modules {
		fmt.Fprintf(h, "module %s\n", normModule(m))
	}
	fmt.Fprintf(h, "guest %s\n", guestDigest)
	return hex.EncodeToString(h.Sum(nil))
}

func (b *builder) build(ctx context.Context) (*Payload, error) {
	files, applets, guestDigest, err := guestInputs()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return b.cached(guestDigest, err)
	}
	p, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	key := b.key(p.all(), guestDigest)
	dir := filepath.Join(b.payloadsDir(), key)
	if pl, err := loadPayload(dir); err == nil {
		return pl, nil
	}

	if err := os.MkdirAll(b.payloadsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create cache %s: %w", b.cache, err)
	}
	l, err := lockFile(ctx, b.lockPath())
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	// Another process may have built it while we waited.
	if pl, err := loadPayload(dir); err == nil {
		return pl, nil
	}
	for _, d := range []string{b.payloadsDir(), b.unpackedDir(), b.debsDir()} {
		removeStaleTemps(d, time.Hour)
	}
	b.logf("bootimage: building payload %s", key[:12])
	tmp, err := os.MkdirTemp(b.payloadsDir(), ".tmp-"+key[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("create payload directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	m, err := b.assemble(ctx, p, files, applets, tmp)
	if err != nil {
		return nil, err
	}
	m.Key = key
	m.GuestSHA256 = guestDigest
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestFile), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("publish payload: %w", err)
	}
	// A directory that failed loadPayload under the lock is broken (a
	// file deleted by hand, say): replace it.
	if _, err := os.Stat(dir); err == nil {
		b.logf("bootimage: replacing broken payload %s", dir)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove broken payload %s: %w", dir, err)
		}
	}
	// The manifest is written last, and the rename makes the directory
	// appear complete or not at all.
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("publish payload %s: %w", dir, err)
	}
	return loadPayload(dir)
}

// cached finds a finished payload in the cache without apt (a container image that carries
// one, see Payload.Seed): one whose manifest's packages, with this builder's kernel
// metapackage, modules and guestDigest, hash to the key it is filed under, so that it was
// built from these very guest files and modules. Of several (built from different package
// versions) the newest wins. noApt is why apt could not be asked.
func (b *builder) cached(guestDigest string, noApt error) (*Payload, error) {
	entries, err := os.ReadDir(b.payloadsDir())
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read cached payloads: %w", err)
	}
	var found *Payload
	var newest time.Time
	for _, e := range entries {
		dir := filepath.Join(b.payloadsDir(), e.Name())
		p, err := loadPayload(dir)
		if err != nil || p.Manifest.Key != e.Name() || b.key(p.Manifest.Packages, guestDigest) != e.Name() {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil && (found == nil || fi.ModTime().After(newest)) {
			found, newest = p, fi.ModTime()
		}
	}
	if found == nil {
		return nil, fmt.Errorf("apt is not available here (%v), and the cache %s holds no payload built from these guest files and modules: build one where apt works and seed the cache with it", noApt, b.cache)
	}
	return found, nil
}

// Seed copies the payload into the cache directory cacheDir (a Config.CacheDir), where Build
// finds it even on a machine without apt: the plugin image carries the payload this way, since
// a suite running in a pod cannot download Debian packages.
func (p *Payload) Seed(cacheDir string) error {
	b, err := newBuilder(Config{CacheDir: cacheDir})
	if err != nil {
		return err
	}
	dst := filepath.Join(b.payloadsDir(), p.Manifest.Key)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("seed cache %s: %w", cacheDir, err)
	}
	// The manifest goes last: loadPayload takes a directory with a manifest for complete.
	var names []string
	for _, o := range p.Manifest.Outputs {
		names = append(names, o.Name)
	}
	names = append(names, ManifestFile)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(p.Dir, n))
		if err != nil {
			return fmt.Errorf("seed cache %s: %w", cacheDir, err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), data, 0o644); err != nil {
			return fmt.Errorf("seed cache %s: %w", cacheDir, err)
		}
	}
	return nil
}

// loadPayload reads a finished payload directory and checks that every output
// of its manifest is there with its recorded size (hashing 11 MB on every
// Build would cost more than the build's other cache checks together).
func loadPayload(dir string) (*Payload, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	for _, o := range m.Outputs {
		fi, err := os.Stat(filepath.Join(dir, o.Name))
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", dir, err)
		}
		if fi.Size() != o.Size {
			return nil, fmt.Errorf("payload %s: %s has %d bytes, manifest says %d", dir, o.Name, fi.Size(), o.Size)
		}
	}
	return &Payload{
		Dir:      dir,
		Kernel:   filepath.Join(dir, KernelFile),
		Initrd:   filepath.Join(dir, InitrdFile),
		Undionly: filepath.Join(dir, UndionlyFile),
		IPXEEFI:  filepath.Join(dir, IPXEEFIFile),
		Manifest: m,
	}, nil
}

// relLink returns the relative symlink target that makes link point at
// target (both initramfs paths), so links stay right wherever the tree is
// unpacked.
func relLink(link, target string) string {
	rel, err := filepath.Rel(path.Dir(link), target)
	if err != nil {
		return "/" + target
	}
	return filepath.ToSlash(rel)
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so readers see the old file or the new one, never a part.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// removeStaleTemps deletes the temporary entries (".tmp-*") that a killed
// Build left in dir. Only entries older than age go: a younger one may
// belong to a process that is working without the lock, like a test.
func removeStaleTemps(dir string, age time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > age {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}
