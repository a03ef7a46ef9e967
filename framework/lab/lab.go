package lab

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/guestssh"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

// Lab addresses. They exist only inside the lab's own namespace: 192.0.2.0/24 is TEST-NET-1,
// reserved for documentation, so nothing real can ever be behind it.
var (
	segmentPrefix = netip.MustParsePrefix("192.0.2.0/24")
	serverAddr    = netip.MustParsePrefix("192.0.2.1/24")
	firstGuestIP  = netip.MustParseAddr("192.0.2.10")
)

// Config describes a lab.
type Config struct {
	// Payload is the guest payload the PXE server hands out.
	Payload *bootimage.Payload
	// Allow are the MACs on the PXE server's allow-list; each gets an address from the segment.
	Allow []net.HardwareAddr
	// Log receives the PXE server's structured log (discarded when nil).
	Log io.Writer
}

// Lab is a running lab: its namespace, bridge, PXE server and the run's credentials.
type Lab struct {
	// NS is the lab's network namespace.
	NS *Namespace
	// Segment is the bridge the PXE server and the guests' bridge NICs share.
	Segment *Segment
	// PXE is our PXE server, running in this process with its sockets in NS.
	PXE *pxe.Server
	// Keys is the run's SSH key pair; guests authorize its public key.
	Keys *guestssh.KeyPair
	// Password is the run's console password for root.
	Password string
	// Payload is what the guests boot.
	Payload *bootimage.Payload

	cfg    Config
	taps   int
	guests int
}

// New makes the run's credentials; Connect and StartPXE then build the lab. Start does all three.
func New(cfg Config) (*Lab, error) {
	if cfg.Payload == nil {
		return nil, errors.New("new lab: Config.Payload is nil")
	}
	keys, err := guestssh.NewKeyPair()
	if err != nil {
		return nil, fmt.Errorf("new lab: %w", err)
	}
	return &Lab{Payload: cfg.Payload, Keys: keys, Password: rand.Text()[:16], cfg: cfg}, nil
}

// Start creates the namespace and the bridge and starts the PXE server on it. The returned Lab
// (non-nil also on error once anything was created) must be stopped with Stop.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := l.Connect(ctx); err != nil {
		return l, err
	}
	return l, l.StartPXE(ctx)
}

// Connect creates the lab's namespace and its Linux bridge.
func (l *Lab) Connect(ctx context.Context) error {
	var err error
	if l.NS, err = CreateNamespace(ctx, "net"); err != nil {
		return fmt.Errorf("connect lab bridge: %w", err)
	}
	if l.Segment, err = CreateSegment(ctx, l.NS, "pxecbr0", serverAddr); err != nil {
		return fmt.Errorf("connect lab bridge: %w", err)
	}
	return nil
}

// StartPXE starts our PXE server on the bridge, with the configured MACs on its allow-list.
func (l *Lab) StartPXE(ctx context.Context) error {
	var reservations []pxe.Reservation
	ip := firstGuestIP
	for _, mac := range l.cfg.Allow {
		reservations = append(reservations, pxe.Reservation{MAC: mac, IP: ip, Hostname: "pxec-guest"})
		ip = ip.Next()
	}
	logOut := l.cfg.Log
	if logOut == nil {
		logOut = io.Discard
	}
	var err error
	l.PXE, err = pxe.Start(ctx, pxe.Config{
		Interface:            l.Segment.Bridge,
		ServerIP:             serverAddr.Addr(),
		Subnet:               segmentPrefix,
		Reservations:         reservations,
		Root:                 l.Payload.Dir,
		Boot:                 pxe.Boot{Kernel: bootimage.KernelFile, Initrd: bootimage.InitrdFile, Cmdline: l.Cmdline()},
		HTTPAddr:             serverAddr.Addr().String() + ":8080",
		TFTPAddr:             serverAddr.Addr().String() + ":69",
		RouterAdvertisements: true,
		Netns:                l.NS.Path(),
		Logger:               slog.New(slog.NewJSONHandler(logOut, nil)),
	})
	if err != nil {
		l.PXE = nil
		return fmt.Errorf("start lab PXE server: %w", err)
	}
	return nil
}

// Cmdline is the guest kernel command line for this run, without the per-boot pxec.mac and
// pxec.nonce that the PXE server adds.
func (l *Lab) Cmdline() string {
	return bootimage.Cmdline(l.Keys.AuthorizedKeyBase64(), l.Password)
}

// Stop stops the PXE server and deletes the namespace with everything in it.
func (l *Lab) Stop(ctx context.Context) error {
	var errs []error
	if l.PXE != nil {
		errs = append(errs, l.PXE.Stop(ctx))
		l.PXE = nil
	}
	if l.NS != nil {
		errs = append(errs, l.NS.Delete(ctx))
		l.NS = nil
	}
	return errors.Join(errs...)
}

// AttachTap adds a tap device for one guest to the bridge: the lab's network attachment.
func (l *Lab) AttachTap(ctx context.Context) (string, error) {
	name := fmt.Sprintf("pxectap%d", l.taps)
	l.taps++
	return name, l.Segment.AddTap(ctx, name)
}

// FirstGuestIP is the address the first allow-listed MAC gets, for reference servers that need
// the same reservation.
func FirstGuestIP() netip.Addr { return firstGuestIP }
