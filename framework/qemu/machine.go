package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

// Accel selects how QEMU runs the guest.
type Accel string

const (
	// KVM uses hardware virtualisation through /dev/kvm.
	KVM Accel = "kvm"
	// TCG is QEMU's software emulation.
	TCG Accel = "tcg"
)

// PodNIC is the guest's first NIC: QEMU user-mode networking with restrict=on, so the guest
// reaches nothing but QEMU's built-in DHCP server, like a pod network behind masquerade. It has
// no boot ROM, as a KubeVirt interface without bootOrder has none.
type PodNIC struct {
	// MAC of the NIC; QEMU's default when nil.
	MAC net.HardwareAddr
	// SSHPort is a 127.0.0.1 port, in the namespace QEMU runs in, forwarded to the guest's port
	// 22; 0 forwards nothing.
	SSHPort int
}

// BridgeNIC is a NIC on an existing tap device (on a bridge).
type BridgeNIC struct {
	// Tap is the name of a persistent tap device in the namespace QEMU runs in.
	Tap string
	// MAC is the NIC's address (required).
	MAC net.HardwareAddr
	// BootIndex is the NIC's place in the boot order; 0 leaves it out of the boot order and
	// gives it no boot ROM, so it is never tried, as KubeVirt does for an interface without
	// bootOrder.
	BootIndex int
}

// DirectBoot boots a kernel and initramfs without firmware network boot (the lab's floor).
type DirectBoot struct {
	Kernel, Initrd, Cmdline string
}

// Config describes one guest.
type Config struct {
	// Name identifies the guest in errors and file names.
	Name string
	// Firmware is BIOS or EFI (BIOS when empty).
	Firmware firmware.Firmware
	// Accel is KVM or TCG; detect it with DetectAccel.
	Accel Accel
	// MemoryMiB is the guest's memory (512 when zero).
	MemoryMiB int
	// Pod is the first NIC (eth0 in the guest).
	Pod PodNIC
	// Bridge NICs follow the pod NIC in PCI order (eth1, ...).
	Bridge []BridgeNIC
	// Direct, when set, boots a kernel directly instead of from the boot order.
	Direct *DirectBoot
	// Wrap prefixes QEMU's command line, e.g. ["ip", "netns", "exec", "pxec-lab"] to run it in
	// a network namespace.
	Wrap []string
	// WorkDir holds per-guest files (EFI variables); a temporary directory when empty.
	WorkDir string
	// Binary is the QEMU program (qemu-system-x86_64 when empty).
	Binary string
	// OVMFCode and OVMFVars are the EFI firmware images (Debian's 4M OVMF when empty).
	OVMFCode, OVMFVars string
	// VNCSocket, when set, gives the guest a VGA display served over VNC on this unix socket,
	// as KubeVirt's VNC subresource serves a VMI's display.
	VNCSocket string
}

// Machine is a running guest. Its serial console is Console; Stop ends it.
type Machine struct {
	// Console is the guest's serial console: reads are what the guest printed, writes are typed.
	Console io.ReadWriter
	// Started is when QEMU was started.
	Started time.Time
	// Args is QEMU's full command line.
	Args []string

	cmd      *exec.Cmd
	stderr   *lockedBuffer
	done     chan struct{}
	waitErr  error
	tempDir  string
	stopOnce sync.Once
}

type console struct {
	io.Reader
	io.Writer
}

// lockedBuffer collects QEMU's standard error for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) < 64<<10 {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

func (c Config) validate() error {
	if c.Name == "" {
		return errors.New("qemu config: Name is empty")
	}
	switch c.Firmware {
	case "", firmware.BIOS, firmware.EFI:
	default:
		return fmt.Errorf("qemu config %s: Firmware %q is not bios or efi", c.Name, c.Firmware)
	}
	switch c.Accel {
	case KVM, TCG:
	default:
		return fmt.Errorf("qemu config %s: Accel %q is not kvm or tcg", c.Name, c.Accel)
	}
	for i, n := range c.Bridge {
		if n.Tap == "" {
			return fmt.Errorf("qemu config %s: Bridge[%d].Tap is empty", c.Name, i)
		}
		if len(n.MAC) != 6 {
			return fmt.Errorf("qemu config %s: Bridge[%d].MAC %q is not a 48-bit MAC", c.Name, i, n.MAC)
		}
		if n.BootIndex < 0 {
			return fmt.Errorf("qemu config %s: Bridge[%d].BootIndex %d is negative", c.Name, i, n.BootIndex)
		}
	}
	if c.Pod.MAC != nil && len(c.Pod.MAC) != 6 {
		return fmt.Errorf("qemu config %s: Pod.MAC %q is not a 48-bit MAC", c.Name, c.Pod.MAC)
	}
	if c.Pod.SSHPort < 0 || c.Pod.SSHPort > 65535 {
		return fmt.Errorf("qemu config %s: Pod.SSHPort %d is out of range", c.Name, c.Pod.SSHPort)
	}
	return nil
}

// Args renders QEMU's command line for the guest; workDir holds the EFI variable store copy.
func (c Config) Args(workDir string) ([]string, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	bin := c.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	mem := c.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	args := append([]string{}, c.Wrap...)
	args = append(args, bin,
		"-name", c.Name,
		"-machine", "q35,graphics=off",
		"-accel", string(c.Accel),
		"-cpu", cpuModel(c.Accel),
		"-m", strconv.Itoa(mem),
		"-smp", "1",
		"-nodefaults",
		"-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-serial", "stdio",
		"-no-reboot",
		// Entropy for the guest's SSH host key, as KubeVirt's rng device gives it.
		"-device", "virtio-rng-pci",
	)
	if c.VNCSocket != "" {
		args = append(args, "-device", "VGA", "-vnc", "unix:"+c.VNCSocket)
	}
	if c.Firmware == firmware.EFI {
		code, vars := c.OVMFCode, c.OVMFVars
		if code == "" {
			code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
		}
		if vars == "" {
			vars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
		}
		varsCopy := filepath.Join(workDir, "OVMF_VARS.fd")
		if err := copyFile(vars, varsCopy); err != nil {
			return nil, fmt.Errorf("qemu %s: copy EFI variables: %w", c.Name, err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+varsCopy)
	}
	user := "user,id=pod,restrict=on"
	if c.Pod.SSHPort != 0 {
		user += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:22", c.Pod.SSHPort)
	}
	pod := "virtio-net-pci,netdev=pod,romfile=,addr=0x3"
	if c.Pod.MAC != nil {
		pod += ",mac=" + c.Pod.MAC.String()
	}
	args = append(args, "-netdev", user, "-device", pod)
	for i, n := range c.Bridge {
		id := fmt.Sprintf("br%d", i)
		dev := fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s,addr=0x%x", id, n.MAC, 4+i)
		if n.BootIndex > 0 {
			dev += fmt.Sprintf(",bootindex=%d", n.BootIndex)
		} else {
			dev += ",romfile="
		}
		args = append(args, "-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.Tap), "-device", dev)
	}
	if c.Direct != nil {
		args = append(args, "-kernel", c.Direct.Kernel, "-initrd", c.Direct.Initrd, "-append", c.Direct.Cmdline)
	}
	return args, nil
}

func cpuModel(a Accel) string {
	if a == KVM {
		return "host"
	}
	return "max"
}

// Start starts the guest. The returned Machine must be stopped with Stop, also on error paths
// after Start returned it.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	work := cfg.WorkDir
	tempDir := ""
	if work == "" {
		d, err := os.MkdirTemp("", "pxec-qemu-")
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		work, tempDir = d, d
	}
	args, err := cfg.Args(work)
	if err != nil {
		os.RemoveAll(tempDir)
		return nil, err
	}
	// Not CommandContext: the caller's context bounds the start, Stop ends the guest.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(tempDir)
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(tempDir)
		return nil, err
	}
	m := &Machine{
		Console: console{Reader: stdout, Writer: stdin},
		Args:    args,
		cmd:     cmd,
		stderr:  &lockedBuffer{},
		done:    make(chan struct{}),
		tempDir: tempDir,
	}
	cmd.Stderr = m.stderr
	if err := ctx.Err(); err != nil {
		os.RemoveAll(tempDir)
		return nil, err
	}
	// Pdeathsig fires when the forking thread dies, not the process; fork from a goroutine
	// locked to its thread for QEMU's whole life so that a thread the runtime retires (as
	// namespace switching does) never takes the guest with it.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		m.Started = time.Now()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		m.waitErr = cmd.Wait()
		close(m.done)
	}()
	if err := <-started; err != nil {
		os.RemoveAll(tempDir)
		return nil, fmt.Errorf("start %s: %s: %w", cfg.Name, commandLine(args), err)
	}
	return m, nil
}

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// ExitError describes how QEMU ended, with its command line and standard error; nil while it runs.
func (m *Machine) ExitError() error {
	select {
	case <-m.done:
	default:
		return nil
	}
	return fmt.Errorf("qemu exited (%v): %s\n%s", m.waitErr, commandLine(m.Args), m.stderr.String())
}

// Stop ends QEMU (SIGTERM, then SIGKILL after a grace period or when ctx ends) and removes the
// guest's temporary files. It is safe to call more than once.
func (m *Machine) Stop(ctx context.Context) error {
	var err error
	m.stopOnce.Do(func() {
		select {
		case <-m.done:
		default:
			_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-m.done:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
				<-m.done
			case <-ctx.Done():
				_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
				<-m.done
			}
		}
		if m.tempDir != "" {
			err = os.RemoveAll(m.tempDir)
		}
	})
	return err
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

func commandLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t'\"\\$;&|<>()*?") {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			q[i] = a
		}
	}
	return strings.Join(q, " ")
}
