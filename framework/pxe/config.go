package pxe

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// Default listen addresses and lease time used when Config leaves them empty.
const (
	// DefaultHTTPAddr listens on all addresses, port 8080: the events API
	// answers on every one of them, scripts and files only on ServerIP
	// (see Config.ServeAllAddrs).
	DefaultHTTPAddr = ":8080"
	// DefaultTFTPAddr is port 69; without Config.ServeAllAddrs its
	// unspecified host stands for ServerIP, the only address TFTP binds.
	DefaultTFTPAddr = "0.0.0.0:69"
	// DefaultDHCPAddr must stay on 0.0.0.0: a socket bound to a unicast
	// address never sees the broadcasts that clients without an address send.
	DefaultDHCPAddr = "0.0.0.0:67"
	// DefaultLeaseTime is the DHCP lease time when Config.LeaseTime is zero.
	DefaultLeaseTime = time.Hour
)

// Config describes one PXE server; Start validates it before opening anything.
type Config struct {
	// Interface is the network interface DHCP and router advertisements run on
	// (required). The DHCP socket is bound to it with SO_BINDTODEVICE.
	Interface string
	// ServerIP is this server's IPv4 address on Interface (required): DHCP
	// siaddr and server identifier (option 54), and the host in HTTP and TFTP URLs.
	ServerIP netip.Addr
	// Subnet is the PXE segment (required); its mask is sent as option 1, and
	// ServerIP, Router and every reservation must lie inside it.
	Subnet netip.Prefix
	// Router is sent as option 3 when valid.
	Router netip.Addr
	// DNS servers are sent as option 6 when present.
	DNS []netip.Addr
	// LeaseTime is the DHCP lease time; zero means DefaultLeaseTime.
	LeaseTime time.Duration
	// Reservations is the allow-list: only these MACs get DHCP answers and
	// scripts, each its fixed address. An empty list answers nobody.
	Reservations []Reservation
	// Root is the directory served read-only over TFTP and HTTP (required).
	Root string
	// Boot names the kernel and initrd under Root and the global kernel
	// command line of the iPXE script.
	Boot Boot
	// HTTPAddr is the HTTP listen address; empty means DefaultHTTPAddr.
	// Port 0 picks a free port (see Server.HTTPAddr). Its host must be
	// ServerIP or unspecified unless ServeAllAddrs is set.
	HTTPAddr string
	// TFTPAddr is the TFTP listen address (IPv4 only); empty means
	// DefaultTFTPAddr. Unless ServeAllAddrs is set, its host must be
	// ServerIP or unspecified, and an unspecified host binds ServerIP.
	TFTPAddr string
	// ServeAllAddrs serves scripts, files and TFTP on every address
	// HTTPAddr and TFTPAddr cover. Without it they are served only on
	// ServerIP, the PXE interface's address: TFTP binds ServerIP, and an
	// HTTP connection to any other local address (the pod network, say)
	// gets only the read-only GET /events and GET /healthz.
	ServeAllAddrs bool
	// DHCPAddr is the DHCP listen address (IPv4 only); empty means DefaultDHCPAddr.
	DHCPAddr string
	// RouterAdvertisements makes the server send IPv6 router advertisements on
	// Interface and answer router solicitations at once, so iPXE does not wait
	// about 16 s for IPv6 configuration. The advertisements carry router
	// lifetime 0, no prefix and M=O=0, so nobody gets an address or a route.
	RouterAdvertisements bool
	// Netns, when set, is the path of a network namespace file (for example
	// /run/netns/pxec-lab); every socket is then opened inside that namespace
	// while the rest of the process stays where it is.
	Netns string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// CrashAfter is a test hook, off (empty) by default: the server crashes on purpose at that
	// point of a boot, so that a test can check how a client, and whoever waits on the server,
	// notice a server that dies mid-boot. See CrashAfterDHCPAck.
	CrashAfter CrashPoint
}

// CrashPoint is where Config.CrashAfter makes the server crash.
type CrashPoint string

// CrashAfterDHCPAck crashes the server right after it has sent its first DHCP ACK: every socket
// it listens on closes at once, nothing more is answered, and Server.Crashed is closed (the
// fixtures/pxe-server command then exits). The client has its address and nothing to boot.
const CrashAfterDHCPAck CrashPoint = "dhcp-ack"

// Boot names the files the iPXE script loads and the kernel command line it passes.
type Boot struct {
	// Kernel is the kernel's path relative to Root (required), e.g. "vmlinuz".
	Kernel string
	// Initrd is the initramfs path relative to Root (required), e.g. "initrd.img".
	Initrd string
	// Cmdline is the global kernel command line; the script appends
	// initrd=<base name of Initrd> before it and the reservation's KernelArgs,
	// pxec.mac and pxec.nonce after it.
	Cmdline string
}

// Reservation is one allow-listed client: its MAC always gets IP.
type Reservation struct {
	// MAC is the client's 6-byte Ethernet address.
	MAC net.HardwareAddr
	// IP is the fixed IPv4 address handed to MAC; it must lie inside Subnet.
	IP netip.Addr
	// Hostname, when set, is sent as DHCP option 12.
	Hostname string
	// KernelArgs are appended to Boot.Cmdline in this client's script, one
	// word each (no whitespace, quotes, backslashes or "${").
	KernelArgs []string
}

// Names of the files non-iPXE firmware is told to chainload over TFTP.
const (
	// BIOSLoader is sent to firmware with client architecture 0.
	BIOSLoader = "undionly.kpxe"
	// EFILoader is sent to firmware with client architecture 7 or 9.
	EFILoader = "ipxe.efi"
)

// Validate checks cfg as Start does before it touches the system: required
// fields, addresses inside Subnet, well-formed and unique reservations, and
// names and arguments an iPXE script can carry. Each problem is reported
// with the field and the offending value. Checks that need the system (Root
// exists, Interface carries ServerIP) are left to Start.
func (cfg Config) Validate() error {
	_, err := validate(cfg)
	return err
}

// ErrInvalidConfig is wrapped by every error Validate and Start return for
// a Config they cannot use, whether found by looking at the values or by
// applying them (a Root that does not exist, an address that cannot be
// bound). The wrapped tree holds one *FieldError per problem.
var ErrInvalidConfig = errors.New("invalid pxe config")

// FieldError is one problem with one Config field, so that a caller can
// name the problem in its own terms (a command-line flag, say) by Field.
type FieldError struct {
	// Field is the Config field, e.g. "Root" or "Reservations[1].MAC".
	Field string
	// Value is the offending value as text; empty for a missing field.
	Value string
	// Problem says what is wrong, e.g. "required" or "outside Subnet 10.0.0.0/24".
	Problem string
	// Conflict, when set, is the field whose value Value duplicates; the
	// message then reads "<Problem> <Conflict>".
	Conflict string
	// Err is the underlying cause, if any.
	Err error
}

// Error reads `Field "Value": Problem[ Conflict][: Err]`, or `Field: Problem` when Value is empty.
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Field)
	if e.Value != "" {
		fmt.Fprintf(&b, " %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Describe(func(field string) string { return field }))
	return b.String()
}

// Describe is the message after the field and value, with Conflict named
// by name (the identity gives Error's wording).
func (e *FieldError) Describe(name func(field string) string) string {
	msg := e.Problem
	if e.Conflict != "" {
		msg += " " + name(e.Conflict)
	}
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrors returns every *FieldError in err's tree, in order, so that a
// caller can report each problem of an ErrInvalidConfig in its own terms.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case *FieldError:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, inner := range x.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			if inner := x.Unwrap(); inner != nil {
				walk(inner)
			}
		}
	}
	walk(err)
	return out
}

// invalidConfig wraps field errors into one error that is ErrInvalidConfig.
func invalidConfig(errs ...error) error {
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// settings is a validated Config with defaults filled in.
type settings struct {
	Config
	byMAC map[string]Reservation
	byIP  map[netip.Addr]Reservation
}

// validate checks cfg without touching the system and returns it with
// defaults applied. Every error names the field and the offending value.
func validate(cfg Config) (*settings, error) {
	// Work on copies: the caller's slices must not change under it.
	cfg.DNS = append([]netip.Addr(nil), cfg.DNS...)
	var errs []error
	bad := func(field string, value any, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: fmt.Sprint(value), Problem: fmt.Sprintf(format, args...)})
	}
	missing := func(field string) {
		errs = append(errs, &FieldError{Field: field, Problem: "required"})
	}
	duplicate := func(field string, value any, conflict string) {
		errs = append(errs, &FieldError{Field: field, Value: fmt.Sprint(value), Problem: "duplicates", Conflict: conflict})
	}

	if cfg.Interface == "" {
		missing("Interface")
	} else if len(cfg.Interface) > 15 || strings.ContainsAny(cfg.Interface, "/ \t\n") {
		bad("Interface", cfg.Interface, "not a valid interface name")
	}

	if !cfg.Subnet.IsValid() {
		missing("Subnet")
	} else if !cfg.Subnet.Addr().Is4() {
		bad("Subnet", cfg.Subnet, "must be IPv4")
	} else if cfg.Subnet.Bits() > 30 {
		bad("Subnet", cfg.Subnet, "leaves no room for clients (prefix longer than /30)")
	} else {
		cfg.Subnet = cfg.Subnet.Masked()
	}
	subnetOK := cfg.Subnet.IsValid() && cfg.Subnet.Addr().Is4() && cfg.Subnet.Bits() <= 30
	bcast := broadcastAddr(cfg.Subnet)

	// inSubnet reports why addr is not a usable host address of the subnet.
	hostProblem := func(addr netip.Addr) string {
		switch {
		case !addr.Is4():
			return "must be IPv4"
		case !subnetOK:
			return ""
		case !cfg.Subnet.Contains(addr):
			return "outside Subnet " + cfg.Subnet.String()
		case addr == cfg.Subnet.Addr():
			return "is the network address of Subnet " + cfg.Subnet.String()
		case addr == bcast:
			return "is the broadcast address of Subnet " + cfg.Subnet.String()
		}
		return ""
	}

	if !cfg.ServerIP.IsValid() {
		missing("ServerIP")
	} else {
		cfg.ServerIP = cfg.ServerIP.Unmap()
		if p := hostProblem(cfg.ServerIP); p != "" {
			bad("ServerIP", cfg.ServerIP, "%s", p)
		}
	}
	if cfg.Router.IsValid() {
		cfg.Router = cfg.Router.Unmap()
		if p := hostProblem(cfg.Router); p != "" {
			bad("Router", cfg.Router, "%s", p)
		}
	}
	for i, d := range cfg.DNS {
		if !d.Unmap().Is4() {
			bad(fmt.Sprintf("DNS[%d]", i), d, "must be IPv4")
		}
		cfg.DNS[i] = d.Unmap()
	}

	switch {
	case cfg.LeaseTime == 0:
		cfg.LeaseTime = DefaultLeaseTime
	case cfg.LeaseTime < time.Second:
		bad("LeaseTime", cfg.LeaseTime, "must be at least 1s")
	case cfg.LeaseTime.Seconds() >= math.MaxUint32:
		bad("LeaseTime", cfg.LeaseTime, "does not fit DHCP's 32-bit seconds")
	}

	if cfg.Root == "" {
		missing("Root")
	}
	if cfg.CrashAfter != "" && cfg.CrashAfter != CrashAfterDHCPAck {
		bad("CrashAfter", cfg.CrashAfter, "not a crash point (want %q, or empty for none)", CrashAfterDHCPAck)
	}
	for _, f := range []struct{ field, value string }{
		{"Boot.Kernel", cfg.Boot.Kernel},
		{"Boot.Initrd", cfg.Boot.Initrd},
	} {
		if f.value == "" {
			missing(f.field)
		} else if err := checkRelName(f.value); err != nil {
			bad(f.field, f.value, "%v", err)
		} else if strings.ContainsAny(f.value, " \t\r\n\"'\\$") {
			bad(f.field, f.value, "contains a character iPXE scripts cannot carry")
		}
	}
	for _, word := range strings.Fields(cfg.Boot.Cmdline) {
		if p := scriptWordProblem(word); p != "" {
			bad("Boot.Cmdline", cfg.Boot.Cmdline, "word %q %s", word, p)
		}
	}
	if strings.ContainsAny(cfg.Boot.Cmdline, "\r\n") {
		bad("Boot.Cmdline", cfg.Boot.Cmdline, "contains a line break")
	}

	for _, a := range []struct{ field, value, def string }{
		{"HTTPAddr", cfg.HTTPAddr, DefaultHTTPAddr},
		{"TFTPAddr", cfg.TFTPAddr, DefaultTFTPAddr},
		{"DHCPAddr", cfg.DHCPAddr, DefaultDHCPAddr},
	} {
		if a.value == "" {
			continue
		}
		if p := listenAddrProblem(a.value, a.field != "HTTPAddr"); p != "" {
			bad(a.field, a.value, "%s", p)
		} else if a.field != "DHCPAddr" && !cfg.ServeAllAddrs && cfg.ServerIP.IsValid() {
			// Scripts, files and TFTP are served on ServerIP only: a
			// listener elsewhere would serve them nowhere.
			if host := listenHost(a.value); host.IsValid() && !host.IsUnspecified() && host != cfg.ServerIP {
				bad(a.field, a.value, "is neither ServerIP %s nor an unspecified address (set ServeAllAddrs to serve elsewhere)", cfg.ServerIP)
			}
		}
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = DefaultHTTPAddr
	}
	if cfg.TFTPAddr == "" {
		cfg.TFTPAddr = DefaultTFTPAddr
	}
	if cfg.DHCPAddr == "" {
		cfg.DHCPAddr = DefaultDHCPAddr
	}

	s := &settings{
		byMAC: make(map[string]Reservation, len(cfg.Reservations)),
		byIP:  make(map[netip.Addr]Reservation, len(cfg.Reservations)),
	}
	macAt := map[string]int{}
	ipAt := map[netip.Addr]int{}
	reservations := make([]Reservation, 0, len(cfg.Reservations))
	for i, r := range cfg.Reservations {
		field := fmt.Sprintf("Reservations[%d]", i)
		ok := true
		switch {
		case len(r.MAC) != 6:
			bad(field+".MAC", r.MAC, "want a 6-byte Ethernet address")
			ok = false
		case r.MAC[0]&1 == 1:
			bad(field+".MAC", r.MAC, "is a multicast or broadcast address")
			ok = false
		case isZero(r.MAC):
			bad(field+".MAC", r.MAC, "is all zeroes")
			ok = false
		}
		if ok {
			key := r.MAC.String()
			if j, dup := macAt[key]; dup {
				duplicate(field+".MAC", r.MAC, fmt.Sprintf("Reservations[%d].MAC", j))
				ok = false
			} else {
				macAt[key] = i
			}
		}
		if !r.IP.IsValid() {
			missing(field + ".IP")
			ok = false
		} else {
			r.IP = r.IP.Unmap()
			switch p := hostProblem(r.IP); {
			case p != "":
				bad(field+".IP", r.IP, "%s", p)
				ok = false
			case r.IP == cfg.ServerIP:
				bad(field+".IP", r.IP, "is ServerIP")
				ok = false
			case cfg.Router.IsValid() && r.IP == cfg.Router:
				bad(field+".IP", r.IP, "is Router")
				ok = false
			}
			if j, dup := ipAt[r.IP]; dup {
				duplicate(field+".IP", r.IP, fmt.Sprintf("Reservations[%d].IP", j))
				ok = false
			} else {
				ipAt[r.IP] = i
			}
		}
		if r.Hostname != "" {
			if p := hostnameProblem(r.Hostname); p != "" {
				bad(field+".Hostname", r.Hostname, "%s", p)
				ok = false
			}
		}
		for j, arg := range r.KernelArgs {
			if p := scriptWordProblem(arg); p != "" {
				bad(fmt.Sprintf("%s.KernelArgs[%d]", field, j), arg, "%s", p)
				ok = false
			} else if strings.HasPrefix(arg, "pxec.mac=") || strings.HasPrefix(arg, "pxec.nonce=") {
				bad(fmt.Sprintf("%s.KernelArgs[%d]", field, j), arg, "is set by the server itself")
				ok = false
			}
		}
		if ok {
			r.MAC = append(net.HardwareAddr(nil), r.MAC...)
			r.KernelArgs = append([]string(nil), r.KernelArgs...)
			s.byMAC[r.MAC.String()] = r
			s.byIP[r.IP] = r
			reservations = append(reservations, r)
		}
	}
	cfg.Reservations = reservations

	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(errs) > 0 {
		return nil, invalidConfig(errs...)
	}
	s.Config = cfg
	return s, nil
}

// broadcastAddr returns the last address of an IPv4 prefix.
func broadcastAddr(p netip.Prefix) netip.Addr {
	if !p.IsValid() || !p.Addr().Is4() {
		return netip.Addr{}
	}
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// subnetMask returns the dotted mask of an IPv4 prefix.
func subnetMask(p netip.Prefix) net.IPMask {
	return net.CIDRMask(p.Bits(), 32)
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkRelName is the lexical half of path resolution: a slash-separated
// relative name with no parent references.
func checkRelName(name string) error {
	switch {
	case name == "":
		return errors.New("empty path")
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("path contains a NUL byte")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path refused")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return errors.New("parent directory reference refused")
		}
	}
	if path.Clean(name) == "." {
		return errors.New("names the root directory")
	}
	return nil
}

// scriptWordProblem says why word cannot travel through an iPXE command line
// unchanged: iPXE splits on whitespace, honours quotes and backslashes,
// expands ${...} settings and treats || and && as operators.
func scriptWordProblem(word string) string {
	switch {
	case word == "":
		return "is empty"
	case strings.ContainsAny(word, " \t\r\n\v\f"):
		return "contains whitespace"
	case strings.ContainsAny(word, "\"'\\"):
		return "contains a quote or backslash"
	case strings.Contains(word, "${"):
		return "contains \"${\", which iPXE would expand"
	case word == "||" || word == "&&":
		return "is an iPXE operator"
	}
	for _, r := range word {
		if r < 0x20 || r == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// hostnameProblem checks an RFC 1123 host name.
func hostnameProblem(h string) string {
	if len(h) > 253 {
		return "longer than 253 characters"
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return "has an empty or over-long label"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "has a label starting or ending with '-'"
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("has character %q outside letters, digits and '-'", c)
			}
		}
	}
	return ""
}

// listenHost returns the host of a checked listen address, unmapped; the
// empty host is IPv4's unspecified address.
func listenHost(addr string) netip.Addr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}
	}
	if host == "" {
		return netip.IPv4Unspecified()
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// listenAddrProblem checks a host:port listen address; ipv4Only rejects IPv6 hosts.
func listenAddrProblem(addr string, ipv4Only bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "not host:port"
	}
	if host != "" {
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return "host is not an IP address"
		}
		if ipv4Only && !ip.Unmap().Is4() {
			return "host must be IPv4"
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "port is not a number from 0 to 65535"
	}
	return ""
}
