package vmiguest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kvv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubecli"
	kvcorev1 "kubevirt.io/client-go/kubevirt/typed/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/framework/vmi"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// Server is the PXE server a guest boots from, as far as the procedure reads it
// (framework/pxepod's Server is one).
type Server interface {
	// Events returns the server's events for mac; see procedure.Target's Events for a server
	// that is gone.
	Events(ctx context.Context, mac string) ([]pxe.Event, error)
}

// Config says how Start runs a guest.
type Config struct {
	// Timeouts bound the start (VMIRunning, BootMenu).
	Timeouts settings.Timeouts
	// Timings gets time zero at the VMI's creation and the "running" milestone; nil records
	// nothing.
	Timings *procedure.Timings
	// Server is the PXE server whose events the procedure reads; nil when there is none (the
	// guest's events are then always empty).
	Server Server
}

// Guest is a running VMI with its serial console attached: a procedure.Target.
type Guest struct {
	// VMI is the VMI as created.
	VMI *kvv1.VirtualMachineInstance

	// ScreenVia says how Screen last read the display (ViaScreenshotAPI or ViaVNC).
	ScreenVia string

	virt            kubecli.KubevirtClient
	console         *console.Console
	server          Server
	noScreenshotAPI bool // the cluster answered that it has no screenshot subresource
}

// Start creates v (in v.Namespace) paused, waits for it to run, attaches its serial console,
// unpauses it and answers the firmware's boot menu. An attach to a VMI already running was
// tried: once in five it gave a stream that stayed silent for minutes. The returned Guest is
// non-nil also on error once the VMI exists; Close releases the console (the VMI goes with its
// namespace).
func Start(ctx context.Context, virt kubecli.KubevirtClient, v *kvv1.VirtualMachineInstance, c Config) (*Guest, error) {
	paused := kvv1.StartStrategyPaused
	v = v.DeepCopy()
	v.Spec.StartStrategy = &paused
	if c.Timings != nil {
		c.Timings.Start() // before the watches, which mark against it
	}
	vmis := virt.VirtualMachineInstance(v.Namespace)
	tr := startTrace(ctx, virt, v.Namespace, v.Name, c.Timings)
	defer tr.stop()
	created, err := vmis.Create(ctx, v, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create VMI %s/%s: %w", v.Namespace, v.Name, err)
	}
	g := &Guest{VMI: created, virt: virt, server: c.Server}
	if _, err := kubevirt.WaitVMIRunning(ctx, virt, v.Namespace, v.Name, c.Timeouts.VMIRunning); err != nil {
		return g, err
	}
	if c.Timings != nil {
		c.Timings.Mark(procedure.StepRunning)
	}
	stream, err := vmis.SerialConsole(v.Name, &kvcorev1.SerialConsoleOptions{ConnectionTimeout: c.Timeouts.VMIRunning})
	if err != nil {
		return g, fmt.Errorf("serial console of %s/%s: %w", v.Namespace, v.Name, err)
	}
	if g.console, err = console.New(stream.AsConn()); err != nil {
		return g, err
	}
	if err := vmis.Unpause(ctx, v.Name, &kvv1.UnpauseOptions{}); err != nil {
		return g, fmt.Errorf("unpause VMI %s/%s: %w", v.Namespace, v.Name, err)
	}
	b := procedure.Boot{Target: g, Firmware: vmi.FirmwareOf(v), Timeouts: c.Timeouts}
	b.SkipBootMenu(ctx)
	return g, nil
}

// Console is the guest's serial console.
func (g *Guest) Console() *console.Console { return g.console }

// Events returns the PXE server's events for mac (none without a server).
func (g *Guest) Events(ctx context.Context, mac net.HardwareAddr) ([]pxe.Event, error) {
	if g.server == nil {
		return nil, nil
	}
	return g.server.Events(ctx, mac.String())
}

// Screen captures the guest's display once, taking nobody's console: through KubeVirt's
// vnc/screenshot subresource (libvirt's domain screenshot, KubeVirt v1.7 and later; no VNC
// session at all) where the cluster has it, else over VNC with preserveSession, which KubeVirt
// refuses rather than disconnect a VNC client that is already connected. ScreenVia says which.
func (g *Guest) Screen(ctx context.Context) (*image.RGBA, error) {
	ns, name := g.VMI.Namespace, g.VMI.Name
	if !g.noScreenshotAPI {
		b, err := g.virt.VirtualMachineInstance(ns).Screenshot(ctx, name, &kvv1.ScreenshotOptions{})
		switch {
		case err == nil:
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("screenshot of %s/%s: %d bytes that are no PNG: %w", ns, name, len(b), err)
			}
			g.ScreenVia = ViaScreenshotAPI
			return toRGBA(img), nil
		case apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
			g.noScreenshotAPI = true // an older KubeVirt: VNC it is, from now on
		default:
			return nil, fmt.Errorf("screenshot of %s/%s: %w", ns, name, err)
		}
	}
	v, err := g.OpenVNC(ctx)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	g.ScreenVia = ViaVNC
	return v.Capture(ctx)
}

// How Screen read the guest's display.
const (
	ViaScreenshotAPI = "KubeVirt's vnc/screenshot subresource"
	ViaVNC           = "VNC with preserveSession"
)

// Viewer is a VNC session on the guest's display, as a person's VNC viewer holds one.
type Viewer struct {
	name   string
	conn   net.Conn
	client *vnc.Client
}

// OpenVNC opens a VNC session with preserveSession: KubeVirt refuses it while another client is
// connected, instead of disconnecting that client.
func (g *Guest) OpenVNC(ctx context.Context) (*Viewer, error) {
	ns, name := g.VMI.Namespace, g.VMI.Name
	stream, err := g.virt.VirtualMachineInstance(ns).VNC(name, true)
	if err != nil {
		return nil, fmt.Errorf("VNC of %s/%s: %w", ns, name, err)
	}
	conn := stream.AsConn()
	c, err := vnc.Connect(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("VNC of %s/%s: %w", ns, name, err)
	}
	return &Viewer{name: ns + "/" + name, conn: conn, client: c}, nil
}

// Capture reads the display once over the session.
func (v *Viewer) Capture(ctx context.Context) (*image.RGBA, error) {
	img, err := v.client.Capture(ctx)
	if err != nil {
		return nil, fmt.Errorf("VNC of %s: %w", v.name, err)
	}
	return img, nil
}

// Close ends the session.
func (v *Viewer) Close() error {
	err := v.client.Close()
	v.conn.Close()
	return err
}

// toRGBA converts a decoded screenshot into the RGBA image the procedure checks.
func toRGBA(img image.Image) *image.RGBA {
	if rgba, ok := img.(*image.RGBA); ok {
		return rgba
	}
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out
}

// DialSSH opens KubeVirt's port-forward to the guest's port 22.
func (g *Guest) DialSSH(context.Context) (net.Conn, error) {
	ns, name := g.VMI.Namespace, g.VMI.Name
	stream, err := g.virt.VirtualMachineInstance(ns).PortForward(name, 22, "tcp")
	if err != nil {
		return nil, fmt.Errorf("port-forward to %s/%s:22: %w", ns, name, err)
	}
	return stream.AsConn(), nil
}

// Explain returns err as it is: the VMI's own story is in the artifacts of a failed spec.
func (g *Guest) Explain(err error) error { return err }

// Delete closes the console, deletes the VMI and waits until it is gone (its QEMU stopped).
func (g *Guest) Delete(ctx context.Context) error {
	g.Close()
	ns, name := g.VMI.Namespace, g.VMI.Name
	vmis := g.virt.VirtualMachineInstance(ns)
	if err := vmis.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete VMI %s/%s: %w", ns, name, err)
	}
	for {
		if _, err := vmis.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("VMI %s/%s still there: %w", ns, name, context.Cause(ctx))
		case <-time.After(deletePoll):
		}
	}
}

// deletePoll paces Delete's wait; the caller's context bounds it.
const deletePoll = 250 * time.Millisecond

// Close releases the serial console.
func (g *Guest) Close() error {
	if g.console == nil {
		return nil
	}
	return g.console.Close()
}
