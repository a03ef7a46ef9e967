package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// AccelEnv overrides detection: "kvm" or "tcg".
const AccelEnv = "PXEC_ACCEL"

// DetectAccel decides between KVM and TCG and says why. $PXEC_ACCEL wins when set. Otherwise
// KVM is chosen only when /dev/kvm opens and a probe guest actually runs under it: kernel is
// booted with no root file system and must reach its "VFS: Unable to mount root fs" panic within
// the probe's time. On this project's CI machines /dev/kvm is either missing or a nested module
// on which guests triple-fault or hang, so the probe is what tells them apart.
func DetectAccel(ctx context.Context, kernel string) (Accel, string, error) {
	switch v := os.Getenv(AccelEnv); v {
	case "":
	case string(KVM), string(TCG):
		return Accel(v), AccelEnv + "=" + v, nil
	default:
		return "", "", fmt.Errorf("%s=%q: want kvm or tcg", AccelEnv, v)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return TCG, fmt.Sprintf("/dev/kvm cannot be opened (%v): using TCG emulation", err), nil
	}
	f.Close()
	if kernel == "" {
		return TCG, "/dev/kvm opens but no probe kernel was given to prove it runs guests: using TCG emulation", nil
	}
	ok, detail := probeKVM(ctx, kernel)
	if !ok {
		return TCG, "/dev/kvm opens but a probe guest did not run under it (" + detail + "): using TCG emulation", nil
	}
	return KVM, "/dev/kvm runs guests: " + detail, nil
}

// probeKVM boots kernel under KVM with no root file system and waits for its panic line.
func probeKVM(ctx context.Context, kernel string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host",
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
		return true, fmt.Sprintf("probe kernel reached its root-fs panic in %s", time.Since(start).Round(100*time.Millisecond))
	}
	if ctx.Err() != nil {
		return false, "probe kernel printed no panic within 20 s"
	}
	last := text
	if len(last) > 300 {
		last = last[len(last)-300:]
	}
	return false, fmt.Sprintf("probe exited (%v) before its panic: %q", err, last)
}
