// Package vmiguest runs a KubeVirt VirtualMachineInstance as the guest of the documented
// procedure (framework/procedure's Target): Start creates it paused, so that the serial
// console attaches before the firmware's first word, then unpauses it and answers the boot menu
// KubeVirt gives paused VMIs; the guest's screen is read over KubeVirt's VNC subresource and
// its SSH port over KubeVirt's port-forward, so nothing but the Kubernetes API is needed.
package vmiguest
