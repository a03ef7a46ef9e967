package settings

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

// Linux limits interface names to IFNAMSIZ (16) bytes including the terminating NUL.
const maxIfaceName = 15

// maxNamespacePrefix leaves room in a 63-character namespace name for "-" and the five random
// characters the API server appends to a generateName.
const maxNamespacePrefix = 57

// Validate refuses settings the suite cannot run with, before it creates anything. The error
// joins every problem found, each naming the setting's key and value. It reads the file system
// (the kubeconfig must be readable, the artifacts directory writable) and changes nothing.
func (c Config) Validate() error {
	var errs []error
	bad := func(key string, value any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s: %s", key, quote(value), fmt.Sprintf(format, args...)))
	}

	if err := checkMAC(c.MAC); err != nil {
		bad("mac", c.MAC, "%v", err)
	}
	for i, m := range c.AllowedMACs {
		if err := checkMAC(m); err != nil {
			bad(fmt.Sprintf("allowedMACs[%d]", i), m, "%v", err)
		}
	}
	if err := checkBridgeName(c.Bridge); err != nil {
		bad("bridge", c.Bridge, "%v", err)
	}
	switch c.BridgeCreate {
	case BridgeExpected, BridgeByNNCP:
	default:
		bad("bridge.create", c.BridgeCreate, "unknown: must be empty (the bridge exists on every node) or %s (the suite creates it by NodeNetworkConfigurationPolicy)", BridgeByNNCP)
	}
	if c.IsolationBridge != "" {
		if err := checkBridgeName(c.IsolationBridge); err != nil {
			bad("isolationBridge", c.IsolationBridge, "%v", err)
		} else if c.IsolationBridge == c.Bridge {
			bad("isolationBridge", c.IsolationBridge, "is the PXE bridge itself; it must be a separate bridge")
		}
	}
	if c.VLAN != 0 && (c.VLAN < 1 || c.VLAN > 4094) {
		bad("vlan", c.VLAN, "not a VLAN ID: must be 1 to 4094, or 0 for none")
	}
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("namespace", c.Namespace, "not a DNS-1123 label: %s", strings.Join(msgs, "; "))
	} else if len(c.Namespace) > maxNamespacePrefix {
		bad("namespace", c.Namespace, "longer than %d characters, leaving no room for -<random>", maxNamespacePrefix)
	}
	if len(c.Firmware) == 0 {
		bad("firmware", "", "must name at least one of %s, %s", firmware.BIOS, firmware.EFI)
	}
	seen := map[firmware.Firmware]bool{}
	for i, f := range c.Firmware {
		key := fmt.Sprintf("firmware[%d]", i)
		switch {
		case f != firmware.BIOS && f != firmware.EFI:
			bad(key, string(f), "unknown firmware: must be %s or %s", firmware.BIOS, firmware.EFI)
		case seen[f]:
			bad(key, string(f), "listed twice")
		}
		seen[f] = true
	}
	if c.Kubeconfig != "" {
		if err := checkReadableFile(c.Kubeconfig); err != nil {
			bad("kubeconfig", c.Kubeconfig, "%v", err)
		}
	}
	if c.ArtifactsDir == "" {
		bad("artifactsDir", c.ArtifactsDir, "must name a directory")
	} else if err := checkWritableDir(c.ArtifactsDir); err != nil {
		bad("artifactsDir", c.ArtifactsDir, "%v", err)
	}
	if c.Images.PXEServer == "" || strings.ContainsFunc(c.Images.PXEServer, isSpace) {
		bad("images.pxeServer", c.Images.PXEServer, "not an image reference")
	}
	t := c.Timeouts
	for _, f := range t.Fields() {
		if *f.Value <= 0 {
			bad("timeouts."+f.Key, f.Value.String(), "must be positive")
		}
	}
	if c.EmulationScale < 1 {
		bad("emulationScale", c.EmulationScale, "must be at least 1: emulation is never faster than hardware virtualization")
	}

	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("config: %w", errors.Join(errs...))
}

func quote(value any) string {
	if s, ok := value.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(value)
}

// checkMAC wants an EUI-48 unicast MAC: the PXE server keys its allow-list on it, and a
// multicast source MAC is dropped by bridges and DHCP servers alike.
func checkMAC(mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return errors.New("not a MAC address such as de:00:00:00:00:de")
	}
	if len(hw) != 6 {
		return fmt.Errorf("not an EUI-48 MAC address (%d octets)", len(hw))
	}
	if hw[0]&1 != 0 {
		return errors.New("a multicast MAC address (bit 0 of the first octet is set)")
	}
	return nil
}

// checkBridgeName applies the kernel's dev_valid_name rules, so that a bad name fails here
// rather than deep in a CNI plugin on a node.
func checkBridgeName(name string) error {
	switch {
	case name == "":
		return errors.New("must name a bridge")
	case len(name) > maxIfaceName:
		return fmt.Errorf("longer than %d bytes, the kernel's limit (IFNAMSIZ)", maxIfaceName)
	case name == "." || name == "..":
		return errors.New("not an interface name")
	case strings.ContainsAny(name, "/:"):
		return errors.New("contains '/' or ':', which interface names cannot")
	case strings.ContainsFunc(name, isSpace):
		return errors.New("contains whitespace, which interface names cannot")
	}
	return nil
}

// isSpace is the kernel's isspace, which dev_valid_name uses.
func isSpace(r rune) bool {
	return r == ' ' || (r >= '\t' && r <= '\r')
}

func checkReadableFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("not readable: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("not readable: %w", err)
	}
	if st.IsDir() {
		return errors.New("a directory, not a kubeconfig file")
	}
	return nil
}

// checkWritableDir finds dir or its nearest existing ancestor (the suite creates the rest) and
// proves it writable by creating and removing a file in it.
func checkWritableDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolve path: %w", err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		// ENOTDIR: a file stands where a directory of the path should be; the walk reaches it.
		if (errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && p != filepath.Dir(p) {
			continue
		}
		if err != nil {
			return fmt.Errorf("not usable: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("not a directory: %s is a file", p)
		}
		f, err := os.CreateTemp(p, ".pxec-write-check-*")
		if err != nil {
			return fmt.Errorf("not writable: %w", err)
		}
		name := f.Name()
		f.Close()
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove write check file: %w", err)
		}
		return nil
	}
}
