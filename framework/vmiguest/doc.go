// Package vmiguest runs a KubeVirt VirtualMachineInstance as the guest of the documented
// procedure (framework/procedure's Target): Start creates it paused, so that the serial
// console attaches before the firmware's first word, then unpauses it and answers the boot menu
// KubeVirt gives paused VMIs; the guest's screen is read through KubeVirt's vnc/screenshot
// subresource (or, on an older KubeVirt, over VNC with preserveSession), so that no one's VNC
// session is taken, and its SSH port over KubeVirt's port-forward: nothing but the Kubernetes
// API is needed.
package vmiguest
