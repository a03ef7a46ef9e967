// Package guestssh logs in to a PXE-booted guest over SSH and reads its
// network interfaces.
//
// Each run makes an ephemeral ed25519 key (NewKeyPair); the guest learns the
// public half from the kernel command line (pxec.authkey) and prints its
// own host key fingerprint on the console. Dial pins that fingerprint: a
// guest presenting any other host key is refused, there is no trust on
// first use. The byte stream underneath is injectable (a Dialer), so the
// same client runs over TCP inside a lab network namespace or over
// KubeVirt's port-forward stream.
//
// The interface parsers read what busybox ip and iproute2 print with -o,
// and /sys/class/net, because the guest's busybox has no JSON output and
// prints no operational state.
package guestssh
