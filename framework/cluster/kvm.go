package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kvmFacts are what KVMUsable looks at before trying a guest.
type kvmFacts struct {
	deviceErr    error  // from stat /dev/kvm
	hwVirt       bool   // the CPU advertises vmx or svm
	vendorModule string // kvm_intel or kvm_amd when loaded (or built in), else ""
}

// KVMUsable reports whether /dev/kvm can run a guest on this host, with the reason. A device
// node is not enough: some hosts offer a /dev/kvm whose guests fault or hang in early boot, so
// the answer is yes only after a tiny guest ran to its HLT instruction.
func KVMUsable(ctx context.Context) (bool, string) {
	f := kvmFacts{}
	_, f.deviceErr = os.Stat(kvmDevice)
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		f.hwVirt = hasHardwareVirt(string(cpuinfo))
	}
	for _, m := range []string{"kvm_intel", "kvm_amd"} {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			f.vendorModule = m
		}
	}
	if ok, why := f.verdict(); !ok {
		return false, why
	}
	return probeGuest(ctx, 5*time.Second)
}

// verdict rules out KVM on what the host shows, before any guest is tried.
func (f kvmFacts) verdict() (bool, string) {
	switch {
	case f.deviceErr != nil:
		return false, fmt.Sprintf("%s unavailable: %v", kvmDevice, f.deviceErr)
	case !f.hwVirt:
		return false, fmt.Sprintf("%s exists but the CPU flags show neither vmx nor svm", kvmDevice)
	case f.vendorModule == "":
		return false, fmt.Sprintf("%s exists but neither kvm_intel nor kvm_amd is loaded", kvmDevice)
	}
	return true, fmt.Sprintf("%s with %s", kvmDevice, f.vendorModule)
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
			return false, fmt.Sprintf("%s cannot run a guest: %v", kvmDevice, err)
		}
		return true, fmt.Sprintf("%s ran a test guest to HLT", kvmDevice)
	case <-time.After(timeout):
		return false, fmt.Sprintf("%s: a test guest did not halt within %s", kvmDevice, timeout)
	case <-ctx.Done():
		return false, fmt.Sprintf("%s: probe interrupted: %v", kvmDevice, ctx.Err())
	}
}

func runHaltGuest() error {
	kvm, err := unix.Open(kvmDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
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
