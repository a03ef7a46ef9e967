// Package vnc is a minimal RFB (VNC) client that takes screenshots of a
// guest's screen, so a spec can keep the boot screen as a PNG artifact.
//
// It speaks RFB 3.8 and falls back to 3.7 and 3.3 for older servers, accepts
// only the None security type (what QEMU and KubeVirt's VNC subresource
// offer), asks for 32-bit true colour, and understands the Raw and CopyRect
// encodings and the DesktopSize pseudo-encoding. Anything else a server sends
// ends the capture with an error naming it. A malformed server cannot make
// the client allocate more than WithMaxPixels allows, nor make it panic.
//
// The client works over any io.ReadWriter: a net.Conn to QEMU's VNC socket,
// or the stream of KubeVirt's VNC subresource, whose AsConn gives a net.Conn:
//
//	stream, err := virtClient.VirtualMachineInstance(ns).VNC(name, false)
//	...
//	img, err := vnc.Screenshot(ctx, stream.AsConn())
//	...
//	err = vnc.WritePNG(filepath.Join(dir, "screen.png"), img)
//
// IsBlank tells a screen that shows something from one of a single colour.
// Before the firmware sets a video mode, QEMU paints its own "Guest has not
// initialized the display (yet)." at 640x480: not blank, yet not the guest's;
// SeaBIOS's screen is VGA text mode, 720x400.
//
// A Client owns its stream and closes it (when it is an io.Closer) on Close,
// when Connect fails, and when a context ends an operation early: closing is
// the only way to interrupt a blocked read on an arbitrary stream. A stream
// that cannot be closed is abandoned instead, and the Client refuses further
// use.
package vnc
