package pxe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// EventKind names what happened in an Event.
type EventKind string

// Event kinds, one per thing a spec may wait for.
const (
	// KindDHCPDiscover is a DISCOVER from an allow-listed MAC.
	KindDHCPDiscover EventKind = "dhcp-discover"
	// KindDHCPOffer is an OFFER, recorded just before it is sent; IP and Path
	// hold the address and boot file.
	KindDHCPOffer EventKind = "dhcp-offer"
	// KindDHCPRequest is a REQUEST from an allow-listed MAC.
	KindDHCPRequest EventKind = "dhcp-request"
	// KindDHCPAck is an ACK, recorded just before it is sent; IP and Path hold
	// the address and boot file.
	KindDHCPAck EventKind = "dhcp-ack"
	// KindDHCPNak is a NAK, recorded just before it is sent; Reason says why.
	KindDHCPNak EventKind = "dhcp-nak"
	// KindDHCPRelease is a RELEASE from an allow-listed MAC.
	KindDHCPRelease EventKind = "dhcp-release"
	// KindDHCPDecline is a DECLINE: the client found its reserved address in use.
	KindDHCPDecline EventKind = "dhcp-decline"
	// KindDHCPInform is an INFORM from an allow-listed MAC.
	KindDHCPInform EventKind = "dhcp-inform"
	// KindDHCPIgnored is a DHCP message left unanswered; Reason says why
	// ("not on allow-list" for MACs without a reservation).
	KindDHCPIgnored EventKind = "dhcp-ignored"
	// KindDHCPSendError is a reply that could not be sent; Reason has the error.
	KindDHCPSendError EventKind = "dhcp-send-error"
	// KindScript is a request for an iPXE script; Status 200 carries the Nonce.
	KindScript EventKind = "script"
	// KindTFTP is a TFTP request, recorded when the transfer ends.
	KindTFTP EventKind = "tftp"
	// KindHTTP is an HTTP file request, recorded when the response ends.
	KindHTTP EventKind = "http"
	// KindRouterSolicitation is an IPv6 router solicitation received.
	KindRouterSolicitation EventKind = "ndp-rs"
	// KindRouterAdvertisement is an IPv6 router advertisement sent: one
	// event per solicitation it answered (with the soliciting MAC when the
	// solicitation carried one), or a MAC-less event for the very first
	// advertisement when nothing solicited it. Periodic ones are not recorded.
	KindRouterAdvertisement EventKind = "ndp-ra"
)

// Protocols an Event can carry.
const (
	// ProtoDHCP marks DHCPv4 events.
	ProtoDHCP = "dhcp"
	// ProtoHTTP marks script and HTTP file events.
	ProtoHTTP = "http"
	// ProtoTFTP marks TFTP transfer events.
	ProtoTFTP = "tftp"
	// ProtoNDP marks router solicitation and advertisement events.
	ProtoNDP = "ndp"
)

// ReasonNotAllowListed is the Reason of events for MACs without a reservation.
const ReasonNotAllowListed = "not on allow-list"

// Event is one thing the server saw or did, as recorded in the per-MAC log.
type Event struct {
	// Time is when the event was recorded.
	Time time.Time `json:"time"`
	// MAC is the client's MAC in lowercase colon form; empty when the server
	// could not tell (a file request from an address no reservation holds).
	MAC string `json:"mac,omitempty"`
	// Kind says what happened.
	Kind EventKind `json:"kind"`
	// Protocol is "dhcp", "http", "tftp" or "ndp".
	Protocol string `json:"protocol"`
	// Remote is the peer's address as seen by the server.
	Remote string `json:"remote,omitempty"`
	// IP is the address offered or acknowledged by DHCP.
	IP string `json:"ip,omitempty"`
	// Path is the file or URL path served, or the boot file a DHCP reply names.
	Path string `json:"path,omitempty"`
	// Status is the HTTP status code of script and http events.
	Status int `json:"status,omitempty"`
	// Bytes is how many bytes of the body or file were sent.
	Bytes int64 `json:"bytes,omitempty"`
	// Duration is how long the transfer took, in nanoseconds in JSON.
	Duration time.Duration `json:"duration,omitempty"`
	// Nonce is the pxec.nonce handed out in a script.
	Nonce string `json:"nonce,omitempty"`
	// ClientArch is DHCP option 93 in decimal ("0", "7", "9"), when sent.
	ClientArch string `json:"clientArch,omitempty"`
	// Firmware is "bios" or "efi" as derived from ClientArch.
	Firmware string `json:"firmware,omitempty"`
	// UserClass is DHCP option 77 ("iPXE" for iPXE).
	UserClass string `json:"userClass,omitempty"`
	// Reason says why a request was ignored, refused or failed; empty on success.
	Reason string `json:"reason,omitempty"`
	// Detail is free-form context, such as the DHCP message type or transaction ID.
	Detail string `json:"detail,omitempty"`
}

// Bounds of the event log. A client controls what a request path, a TFTP
// file name or a DHCP option carries, so every string an event keeps is cut
// to maxFieldBytes, and the log as a whole keeps at most maxEvents events
// and maxLogBytes bytes of their JSON form: when either is exceeded the
// oldest events are dropped until half of both budgets is free again. A boot
// records about fifteen events of some 300 bytes each, so 8 MiB hold tens of
// thousands of boots while GET /events never returns more than about 12 MiB.
const (
	maxEvents     = 100000
	maxLogBytes   = 8 << 20
	maxFieldBytes = 512
)

// eventLog is an append-only, bounded list of events that waiters can follow.
type eventLog struct {
	log *slog.Logger

	mu       sync.Mutex
	events   []Event
	sizes    []int // JSON size of each event in events
	bytes    int   // sum of sizes
	maxCount int
	maxBytes int
	dropped  int           // events dropped from the front, for absolute indexes
	changed  chan struct{} // closed and replaced on every append
	closed   bool
}

func newEventLog(log *slog.Logger) *eventLog {
	return &eventLog{log: log, changed: make(chan struct{}), maxCount: maxEvents, maxBytes: maxLogBytes}
}

// record stamps ev with the current time if it has none, bounds its
// strings, logs it (as a line at the event's time) and appends it.
func (l *eventLog) record(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev = ev.bounded()
	level := slog.LevelInfo
	if ev.Reason != "" {
		level = slog.LevelWarn
	}
	// The line carries the event's own time, so that EventsFromLog reads back the same event.
	if ctx := context.Background(); l.log.Enabled(ctx, level) {
		r := slog.NewRecord(ev.Time, level, EventMessage, 0)
		r.AddAttrs(
			slog.String("kind", string(ev.Kind)),
			slog.String("mac", ev.MAC),
			slog.String("protocol", ev.Protocol),
			slog.String("remote", ev.Remote),
			slog.String("ip", ev.IP),
			slog.String("path", ev.Path),
			slog.Int("status", ev.Status),
			slog.Int64("bytes", ev.Bytes),
			slog.Duration("duration", ev.Duration),
			slog.String("nonce", ev.Nonce),
			slog.String("clientArch", ev.ClientArch),
			slog.String("firmware", ev.Firmware),
			slog.String("userClass", ev.UserClass),
			slog.String("reason", ev.Reason),
			slog.String("detail", ev.Detail),
		)
		_ = l.log.Handler().Handle(ctx, r) // a log that cannot be written loses only the line
	}
	size := eventSize(ev)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) >= l.maxCount || l.bytes+size > l.maxBytes {
		l.trim(size)
	}
	l.events = append(l.events, ev)
	l.sizes = append(l.sizes, size)
	l.bytes += size
	if !l.closed {
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// trim drops the oldest events until half the count and half the bytes are
// free, with room for one more event of size bytes; the caller holds l.mu.
func (l *eventLog) trim(size int) {
	n := 0
	for n < len(l.events) && (len(l.events)-n > l.maxCount/2 || l.bytes+size > l.maxBytes/2) {
		l.bytes -= l.sizes[n]
		n++
	}
	// Copy rather than reslice so the dropped events' memory is released.
	l.events = append(l.events[:0:0], l.events[n:]...)
	l.sizes = append(l.sizes[:0:0], l.sizes[n:]...)
	l.dropped += n
}

// eventSize is the length of ev's JSON form, what it costs GET /events.
func eventSize(ev Event) int {
	b, err := json.Marshal(ev)
	if err != nil {
		return maxFieldBytes // unreachable: Event has only plain fields
	}
	return len(b)
}

// bounded returns ev with every string cut to maxFieldBytes.
func (ev Event) bounded() Event {
	for _, f := range []*string{&ev.MAC, &ev.Protocol, &ev.Remote, &ev.IP, &ev.Path, &ev.Nonce,
		&ev.ClientArch, &ev.Firmware, &ev.UserClass, &ev.Reason, &ev.Detail} {
		*f = clip(*f, maxFieldBytes)
	}
	ev.Kind = EventKind(clip(string(ev.Kind), maxFieldBytes))
	return ev
}

// TruncationMark starts the suffix clip leaves on a string it cut; the
// suffix goes on with the original length: "…(truncated, 1000000 bytes)".
const TruncationMark = "…(truncated, "

// clip returns s unchanged when it has at most max bytes, else its first
// max bytes (not splitting a UTF-8 sequence) and a suffix saying how long
// s was, so a reader sees that something was cut.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncated(len(s))
}

// truncated is what clip and echo put after what they kept of an n-byte input.
func truncated(n int) string { return TruncationMark + strconv.Itoa(n) + " bytes)" }

// echo quotes a client's input for an error reply or event, Go-style, in at most
// maxEchoBytes bytes of quoted text plus the truncation mark: the bound holds after
// quoting, where an invalid byte takes four (a fuzzer's 43 bytes of 0xc6 made a 229-byte
// reply when the input was clipped before it was quoted).
func echo(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var q string
		if r == utf8.RuneError && size == 1 {
			q = fmt.Sprintf(`\x%02x`, s[i])
		} else {
			q = strconv.QuoteRune(r)
			q = q[1 : len(q)-1]
			if r == '"' {
				q = `\"`
			} else if r == '\'' {
				q = "'"
			}
		}
		if b.Len()+len(q) > maxEchoBytes {
			b.WriteByte('"')
			return b.String() + truncated(len(s))
		}
		b.WriteString(q)
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// EventMessage is the log message of every event the server records: each event is also a
// log line carrying its fields as attributes, named as in Event's JSON form.
const EventMessage = "pxe event"

// EventsFromLog reads back the events of mac ("" for every MAC) from a server's log of JSON
// lines (slog's JSON handler, as fixtures/pxe-server writes it), oldest first: what is still
// known of a server whose event log can no longer be asked, one that crashed say. Lines that
// are no event are skipped; events the log's rate limit suppressed are missing.
func EventsFromLog(r io.Reader, mac string) ([]Event, error) {
	out := []Event{}
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var l struct {
				Msg string `json:"msg"`
				Event
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == EventMessage && (mac == "" || l.MAC == mac) {
				out = append(out, l.Event)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read pxe server log: %w", err)
		}
	}
}

// list returns a copy of the events of mac, or of all events when mac is "".
func (l *eventLog) list(mac string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Event{}
	for _, ev := range l.events {
		if mac == "" || ev.MAC == mac {
			out = append(out, ev)
		}
	}
	return out
}

// close wakes every waiter for good; later waits fail at once.
func (l *eventLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.changed)
	}
}

// errStopped is returned by waits on a stopped server.
var errStopped = fmt.Errorf("pxe server stopped")

// waitFor returns the first event, past or future, of mac ("" for any MAC)
// that match accepts (nil accepts all).
func (l *eventLog) waitFor(ctx context.Context, mac string, match func(Event) bool) (Event, error) {
	next := 0 // absolute index of the next event to look at
	for {
		l.mu.Lock()
		start := next - l.dropped
		if start < 0 {
			start = 0
		}
		for i := start; i < len(l.events); i++ {
			ev := l.events[i]
			if (mac == "" || ev.MAC == mac) && (match == nil || match(ev)) {
				l.mu.Unlock()
				return ev, nil
			}
		}
		next = l.dropped + len(l.events)
		changed, closed := l.changed, l.closed
		l.mu.Unlock()
		if closed {
			return Event{}, errStopped
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-changed:
		}
	}
}

// macKey is the form MACs take in events, URLs and kernel arguments.
func macKey(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return mac.String()
}

// maxEchoBytes bounds how much of a client's input an error reply quotes.
const maxEchoBytes = 64

// errNotMAC is what parseMAC wraps for text that is no MAC at all.
var errNotMAC = errors.New("not a MAC address")

// parseMAC accepts a 6-byte MAC in any form net.ParseMAC knows.
func parseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		// net.ParseMAC's error quotes its whole input: keep our own words.
		return nil, fmt.Errorf("parse mac %s: %w", echo(s), errNotMAC)
	}
	if len(hw) != 6 {
		return nil, fmt.Errorf("parse mac %s: want a 6-byte Ethernet address", echo(s))
	}
	return hw, nil
}
