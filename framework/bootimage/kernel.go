package bootimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// DefaultModules returns the kernel modules the guest loads unless Config
// says otherwise: virtio PCI and virtio-net for the NICs, and virtio-rng so
// that dropbearkey gets entropy at once. Their dependencies are added and
// built-in ones skipped, so the list may name more than a given kernel needs.
func DefaultModules() []string {
	return []string{
		"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"failover", "net_failover", "virtio_net", "virtio_rng",
	}
}

// kernelModule is one loadable module the guest inserts.
type kernelModule struct {
	// Name is the module name with underscores, as modinfo's name= has it.
	Name string `json:"name"`
	// Path is where the package and the initramfs keep it.
	Path string `json:"path"`
	Data []byte `json:"-"`
}

// kernelPayload is what the guest needs from a kernel package.
type kernelPayload struct {
	Release string
	Vmlinuz []byte
	// Modules is in load order: every module after its dependencies.
	Modules []kernelModule
	// Builtin names the wanted modules (and dependencies) that the kernel
	// has built in, so there is nothing to load.
	Builtin []string
}

// moduleGraph knows, for the modules of one kernel, which are built in, where
// the loadable ones are, and the dependencies read so far.
type moduleGraph struct {
	builtin    map[string]bool
	paths      map[string]string
	compressed map[string]string
	depends    map[string][]string
}

// unread returns the paths of loadable modules that want reaches but whose
// dependencies are not known yet.
func (g moduleGraph) unread(want []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var walk func(name, by string) error
	walk = func(name, by string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		if g.builtin[name] {
			return nil
		}
		deps, known := g.depends[name]
		if !known {
			p, ok := g.paths[name]
			if !ok {
				return g.missingError(name, by)
			}
			out = append(out, p)
			return nil
		}
		for _, d := range deps {
			if err := walk(d, name); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range want {
		if err := walk(normModule(name), ""); err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func (g moduleGraph) missingError(name, by string) error {
	what := "module " + name
	if by != "" {
		what += " (needed by " + by + ")"
	}
	if p, ok := g.compressed[name]; ok {
		return fmt.Errorf("%s is compressed (%s): busybox insmod loads only plain .ko files", what, p)
	}
	return fmt.Errorf("%s is neither built into the kernel nor shipped as a loadable module", what)
}

// loadOrder returns the loadable modules that want needs, each after its
// dependencies (depth first, dependencies in name order, so the order is
// stable), and the needed modules that are built in.
func (g moduleGraph) loadOrder(want []string) (order, builtin []string, err error) {
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(name string, stack []string) error
	visit = func(name string, stack []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(stack, name), " -> "))
		}
		state[name] = 1
		if g.builtin[name] {
			builtin = append(builtin, name)
			state[name] = 2
			return nil
		}
		deps, ok := g.depends[name]
		if !ok {
			if _, loadable := g.paths[name]; loadable {
				return fmt.Errorf("module %s: dependencies not read", name)
			}
			return g.missingError(name, "")
		}
		deps = append([]string(nil), deps...)
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d, append(stack, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, name := range want {
		if err := visit(normModule(name), nil); err != nil {
			return nil, nil, err
		}
	}
	return order, builtin, nil
}

// normModule spells a module name as the kernel does internally: file names
// may use dashes (virtio-rng.ko), module names use underscores.
func normModule(name string) string {
	return strings.ReplaceAll(strings.TrimSuffix(name, ".ko"), "-", "_")
}

// parseModinfo reads a module's name and dependencies from its .modinfo
// section, which modpost fills at kernel build time; depmod's modules.dep is
// made at install time and Debian's package does not ship it.
func parseModinfo(data []byte) (name string, depends []string, err error) {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return "", nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return "", nil, fmt.Errorf("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return "", nil, fmt.Errorf("read .modinfo: %w", err)
	}
	for _, kv := range bytes.Split(info, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			name = v
		case "depends":
			for _, d := range strings.Split(v, ",") {
				if d != "" {
					depends = append(depends, normModule(d))
				}
			}
		}
	}
	if name == "" {
		return "", nil, fmt.Errorf(".modinfo has no name")
	}
	return normModule(name), depends, nil
}

// extractKernel reads the kernel image and the modules want needs from a
// linux-image package, streaming its data tarball instead of unpacking its
// few hundred megabytes of modules. A dependency first met after its module's
// tarball entry costs another pass.
func extractKernel(ctx context.Context, deb string, want []string) (*kernelPayload, error) {
	kp := &kernelPayload{}
	g := moduleGraph{builtin: map[string]bool{}, paths: map[string]string{}, compressed: map[string]string{}, depends: map[string][]string{}}
	keep := map[string]bool{}
	for _, w := range want {
		keep[normModule(w)] = true
	}
	modData := map[string][]byte{}
	first := true
	for pass := 1; ; pass++ {
		err := walkDeb(ctx, deb, func(hdr *tar.Header, r io.Reader) error {
			name := strings.TrimPrefix(hdr.Name, "./")
			base := path.Base(name)
			switch {
			case hdr.Typeflag != tar.TypeReg:
				return nil
			case first && strings.HasPrefix(name, "boot/vmlinuz-"):
				kp.Release = strings.TrimPrefix(base, "vmlinuz-")
				b, err := io.ReadAll(r)
				kp.Vmlinuz = b
				return err
			case first && strings.HasPrefix(name, "lib/modules/") && base == "modules.builtin":
				sc := bufio.NewScanner(r)
				for sc.Scan() {
					if l := strings.TrimSpace(sc.Text()); l != "" {
						g.builtin[normModule(path.Base(l))] = true
					}
				}
				return sc.Err()
			case !strings.HasPrefix(name, "lib/modules/"):
				return nil
			case strings.HasSuffix(base, ".ko"):
				m := normModule(base)
				if first {
					g.paths[m] = name
				}
				if keep[m] || keep[name] {
					b, err := io.ReadAll(r)
					modData[name] = b
					return err
				}
			case first && (strings.HasSuffix(base, ".ko.xz") || strings.HasSuffix(base, ".ko.zst") || strings.HasSuffix(base, ".ko.gz")):
				g.compressed[normModule(base[:strings.Index(base, ".ko")])] = name
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read kernel package %s: %w", path.Base(deb), err)
		}
		first = false
		if kp.Release == "" {
			return nil, fmt.Errorf("read kernel package %s: no boot/vmlinuz-*", path.Base(deb))
		}
		for p, data := range modData {
			m, deps, err := parseModinfo(data)
			if err != nil {
				return nil, fmt.Errorf("read modinfo of %s: %w", p, err)
			}
			g.depends[m] = deps
		}
		unread, err := g.unread(want)
		if err != nil {
			return nil, fmt.Errorf("resolve modules of kernel %s: %w", kp.Release, err)
		}
		if len(unread) == 0 {
			break
		}
		if pass >= 8 {
			return nil, fmt.Errorf("resolve modules of kernel %s: still unread after %d passes: %s", kp.Release, pass, strings.Join(unread, ", "))
		}
		keep = map[string]bool{}
		for _, p := range unread {
			keep[p] = true
		}
	}
	order, builtin, err := g.loadOrder(want)
	if err != nil {
		return nil, fmt.Errorf("order modules of kernel %s: %w", kp.Release, err)
	}
	kp.Builtin = builtin
	prefix := "lib/modules/" + kp.Release + "/"
	for _, m := range order {
		p := g.paths[m]
		if !strings.HasPrefix(p, prefix) {
			return nil, fmt.Errorf("module %s at %s is not for kernel %s", m, p, kp.Release)
		}
		kp.Modules = append(kp.Modules, kernelModule{Name: m, Path: p, Data: modData[p]})
	}
	return kp, nil
}
