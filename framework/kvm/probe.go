package kvm

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Device is the KVM device node a guest needs for hardware acceleration.
const Device = "/dev/kvm"

// OverrideEnv, when set to "kvm" or "tcg", decides instead of the probe.
const OverrideEnv = "PXEC_ACCEL"

// Verdict is the probe's answer: whether KVM runs guests here, and why it says so.
type Verdict struct {
	// Usable is true only when a guest ran under KVM (or OverrideEnv said "kvm").
	Usable bool
	// Reason is one plain sentence: what was found or what failed.
	Reason string
}

// Option changes what Probe tries.
type Option interface {
	apply(*settings)
}

type optionFunc func(*settings)

func (f optionFunc) apply(s *settings) { f(s) }

type settings struct {
	kernel  string
	qemu    string
	timeout time.Duration
}

// WithKernel makes Probe also boot kernel under QEMU with KVM, after the test guest halted,
// and require it to reach its "VFS: Unable to mount root fs" panic: the strictest test, for
// callers that are about to boot a real guest with QEMU.
func WithKernel(path string) Option {
	return optionFunc(func(s *settings) { s.kernel = path })
}

// Probe tells whether /dev/kvm runs guests on this host. Where OverrideEnv is set it decides.
// Otherwise a device node is not enough: some hosts offer a /dev/kvm whose guests fault or hang
// in early boot (REFERENCE §4), so the answer is yes only when the CPU advertises vmx or svm,
// kvm_intel or kvm_amd is loaded, a one-instruction guest ran to HLT, and, WithKernel given, a
// kernel booted under QEMU with KVM. The error is only for a bad OverrideEnv value.
func Probe(ctx context.Context, opts ...Option) (Verdict, error) {
	s := settings{qemu: "qemu-system-x86_64", timeout: 20 * time.Second}
	for _, o := range opts {
		o.apply(&s)
	}
	switch v := os.Getenv(OverrideEnv); v {
	case "":
	case "kvm":
		return Verdict{Usable: true, Reason: OverrideEnv + "=kvm"}, nil
	case "tcg":
		return Verdict{Usable: false, Reason: OverrideEnv + "=tcg"}, nil
	default:
		return Verdict{}, fmt.Errorf("%s=%q: want kvm or tcg", OverrideEnv, v)
	}
	if ok, why := readFacts().verdict(); !ok {
		return Verdict{Reason: why}, nil
	}
	if ok, why := probeGuest(ctx, 5*time.Second); !ok {
		return Verdict{Reason: why}, nil
	}
	if s.kernel == "" {
		return Verdict{Usable: true, Reason: Device + " ran a test guest to HLT"}, nil
	}
	ok, why := bootKernel(ctx, s.qemu, s.kernel, s.timeout)
	return Verdict{Usable: ok, Reason: why}, nil
}

// facts are what Probe looks at before trying a guest.
type facts struct {
	deviceErr    error  // from opening /dev/kvm
	hwVirt       bool   // the CPU advertises vmx or svm
	vendorModule string // kvm_intel or kvm_amd when loaded (or built in), else ""
}

func readFacts() facts {
	f := facts{}
	if dev, err := os.OpenFile(Device, os.O_RDWR, 0); err != nil {
		f.deviceErr = err
	} else {
		dev.Close()
	}
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		f.hwVirt = hasHardwareVirt(string(cpuinfo))
	}
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			f.vendorModule = m
		}
	}
	return f
}

// verdict rules out KVM on what the host shows, before any guest is tried.
func (f facts) verdict() (bool, string) {
	switch {
	case f.deviceErr != nil:
		return false, fmt.Sprintf("%s unavailable: %v", Device, f.deviceErr)
	case !f.hwVirt:
		return false, fmt.Sprintf("%s exists but the CPU flags show neither vmx nor svm", Device)
	case f.vendorModule == "":
		return false, fmt.Sprintf("%s exists but neither kvm_intel nor kvm_amd is loaded", Device)
	}
	return true, fmt.Sprintf("%s with %s", Device, f.vendorModule)
}

// hasHardwareVirt reports whether any CPU in /proc/cpuinfo lists vmx (Intel) or svm (AMD).
func hasHardwareVirt(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(value) {
			if flag == "vmx" || flag == "svm" {
				return true
			}
		}
	}
	return false
}

// ioctl numbers and sizes from linux/kvm.h (x86-64).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmRun                 = 0xAE80
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmAPIVersion          = 12
	kvmExitHLT             = 5
	sizeofRegs             = 144
	sizeofSregs            = 312
	guestCode              = 0x1000
)

// probeGuest runs a one-instruction real-mode guest (HLT at 0x1000) and reports whether it
// halted within timeout. A guest that hangs leaves its goroutine and descriptors behind until
// the process exits: nothing can take a vCPU back from a KVM_RUN that never returns.
func probeGuest(ctx context.Context, timeout time.Duration) (bool, string) {
	done := make(chan error, 1)
	go func() { done <- runHaltGuest() }()
	select {
	case err := <-done:
		if err != nil {
			return false, fmt.Sprintf("%s cannot run a guest: %v", Device, err)
		}
		return true, ""
	case <-time.After(timeout):
		return false, fmt.Sprintf("%s: a test guest did not halt within %s", Device, timeout)
	case <-ctx.Done():
		return false, fmt.Sprintf("%s: probe interrupted: %v", Device, ctx.Err())
	}
}

func runHaltGuest() error {
	kvm, err := unix.Open(Device, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(kvm)
	if v, err := ioctl(kvm, kvmGetAPIVersion, 0); err != nil || v != kvmAPIVersion {
		return fmt.Errorf("KVM_GET_API_VERSION = %d, %v (want %d)", v, err, kvmAPIVersion)
	}
	vmFD, err := ioctl(kvm, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	vm := int(vmFD)
	defer unix.Close(vm)
	mem, err := unix.Mmap(-1, 0, 0x1000, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap guest memory: %w", err)
	}
	defer unix.Munmap(mem)
	mem[0] = 0xf4 // hlt
	region := struct {
		slot, flags                  uint32
		guestPhys, size, userAddress uint64
	}{guestPhys: guestCode, size: uint64(len(mem)), userAddress: uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctl(vm, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	cpuFD, err := ioctl(vm, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU: %w", err)
	}
	cpu := int(cpuFD)
	defer unix.Close(cpu)
	runSize, err := ioctl(kvm, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := unix.Mmap(cpu, 0, int(runSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run: %w", err)
	}
	defer unix.Munmap(run)
	var sregs [sizeofSregs]byte
	if _, err := ioctl(cpu, kvmGetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	// cs is the first kvm_segment: base (u64) at 0, selector (u16) at 12. Flat real mode.
	binary.NativeEndian.PutUint64(sregs[0:8], 0)
	binary.NativeEndian.PutUint16(sregs[12:14], 0)
	if _, err := ioctl(cpu, kvmSetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	var regs [sizeofRegs]byte
	binary.NativeEndian.PutUint64(regs[128:136], guestCode) // rip
	binary.NativeEndian.PutUint64(regs[136:144], 2)         // rflags: bit 1 is always set
	if _, err := ioctl(cpu, kvmSetRegs, uintptr(unsafe.Pointer(&regs[0]))); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	if _, err := ioctl(cpu, kvmRun, 0); err != nil {
		return fmt.Errorf("KVM_RUN: %w", err)
	}
	if reason := binary.NativeEndian.Uint32(run[8:12]); reason != kvmExitHLT {
		return fmt.Errorf("test guest exited with reason %d, want HLT (%d)", reason, kvmExitHLT)
	}
	return nil
}

func ioctl(fd int, req, arg uintptr) (uintptr, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
	if errno != 0 {
		return 0, errno
	}
	return r, nil
}

// bootKernel boots kernel under QEMU with KVM and no root file system and waits for its
// root-fs panic.
func bootKernel(ctx context.Context, qemu, kernel string, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "kvm", "-cpu", "host",
		"-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-no-reboot", "-kernel", kernel,
		"-append", "console=ttyS0 panic=-1 root=/dev/nonexistent")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	text := out.String()
	if strings.Contains(text, "Unable to mount root fs") || strings.Contains(text, "Kernel panic") {
		return true, fmt.Sprintf("%s ran a test guest and a probe kernel reached its root-fs panic in %s", Device, time.Since(start).Round(100*time.Millisecond))
	}
	if ctx.Err() != nil {
		return false, fmt.Sprintf("%s ran a test guest, but a probe kernel printed no panic within %s", Device, timeout)
	}
	if len(text) > 300 {
		text = text[len(text)-300:]
	}
	return false, fmt.Sprintf("%s ran a test guest, but a probe kernel exited (%v) before its panic: %q", Device, err, text)
}
