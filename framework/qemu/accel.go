package qemu

import (
	"context"
	"fmt"

	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
)

// AccelEnv overrides detection: "kvm" or "tcg".
const AccelEnv = kvm.OverrideEnv

// DetectAccel decides between KVM and TCG and says why, with the project's one probe
// (framework/kvm): $PXEC_ACCEL wins when set; otherwise KVM is chosen only when a test guest
// ran under it and, where kernel is given, that kernel booted under QEMU with KVM to its
// root-fs panic. On this project's CI machines /dev/kvm is either missing or a nested module
// on which guests triple-fault or hang, so the probe is what tells them apart.
func DetectAccel(ctx context.Context, kernel string) (Accel, string, error) {
	var opts []kvm.Option
	if kernel != "" {
		opts = append(opts, kvm.WithKernel(kernel))
	}
	v, err := kvm.Probe(ctx, opts...)
	if err != nil {
		return "", "", err
	}
	if v.Usable {
		return KVM, v.Reason, nil
	}
	return TCG, fmt.Sprintf("%s: using TCG emulation", v.Reason), nil
}
