package pxe

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Bounds the regression tests hold the server to. They are the test's own
// numbers, looser than the server's, so they state the promise rather than
// repeat the implementation: an event of a hostile request costs a few KiB
// at most, and an error reply quotes a few hundred bytes at most.
const (
	testMaxEventJSON = 4 << 10
	testMaxErrorBody = 512
	// An ERROR packet should quote a bounded part of the name and say why.
	testMaxTFTPError = 200
)

// eventsJSONSize is the size of evs as JSON, what they cost GET /events.
func eventsJSONSize(t *testing.T, evs []Event) int {
	t.Helper()
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// checkEventsBounded fails the test for any event whose JSON exceeds
// testMaxEventJSON, and for any event of a hostile request (its path a run
// of x) whose path does not say it was cut.
func checkEventsBounded(t *testing.T, evs []Event) {
	t.Helper()
	mark := regexp.MustCompile(regexp.QuoteMeta(TruncationMark) + `\d+ bytes\)$`)
	var big, unmarked []string
	for _, ev := range evs {
		if n := eventsJSONSize(t, []Event{ev}); n > testMaxEventJSON {
			big = append(big, fmt.Sprintf("%s event of %d bytes (path %.40q...)", ev.Kind, n, ev.Path))
		}
		if strings.Contains(ev.Path, strings.Repeat("x", 100)) && !mark.MatchString(ev.Path) {
			unmarked = append(unmarked, fmt.Sprintf("%s event path %.40q...", ev.Kind, ev.Path))
		}
	}
	if len(big) > 0 {
		t.Errorf("%d events take more than %d bytes of JSON, first %s", len(big), testMaxEventJSON, big[0])
	}
	if len(unmarked) > 0 {
		t.Errorf("%d event paths do not end in %s, first %s", len(unmarked), mark, unmarked[0])
	}
}

// Issue 13, defect 1 over HTTP: 50 requests with 1 MB paths were each kept
// whole in the event log (path and error text), and GET /events then
// returned more than 100 MB.
func TestHTTPLongRequestsKeepEventLogAndRepliesBounded(t *testing.T) {
	srv := startLoopback(t, nil)
	base := srv.BaseURL()
	huge := strings.Repeat("x", 1_000_000)
	long := strings.Repeat("x", 6000) // fits the header limit, so it reaches the handlers
	oversized, largest := 0, ""
	for i := range 50 {
		for _, target := range []string{"/" + huge, "/" + long, scriptPathPrefix + long, "/events?mac=" + long} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+target, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close on an oversized request while the
				// client still writes: nothing was echoed either way.
				t.Logf("request %d of %d bytes: %v", i, len(target), err)
				continue
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read reply to a %d-byte path: %v", len(target), err)
			}
			if resp.StatusCode < 400 {
				t.Fatalf("a %d-byte path got status %d", len(target), resp.StatusCode)
			}
			if len(body) > testMaxErrorBody {
				oversized++
				largest = fmt.Sprintf("%d bytes for a %d-byte target: %.80q...", len(body), len(target), body)
			}
		}
	}
	if oversized > 0 {
		t.Errorf("%d error replies longer than %d bytes, e.g. %s", oversized, testMaxErrorBody, largest)
	}
	evs := srv.Events(nil)
	checkEventsBounded(t, evs)
	if n := eventsJSONSize(t, evs); n > 200*testMaxEventJSON {
		t.Errorf("event log holds %d bytes of JSON after 200 hostile requests, want at most %d", n, 200*testMaxEventJSON)
	}

	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || n > 2*200*testMaxEventJSON {
		t.Errorf("GET /events: status %d, %d bytes; want 200 and at most %d bytes", resp.StatusCode, n, 2*200*testMaxEventJSON)
	}
}

// Issue 13, defect 1 over TFTP: a read request's file name was kept whole
// in the event log and echoed whole in the ERROR packet.
func TestTFTPLongNamesKeepEventLogAndRepliesBounded(t *testing.T) {
	srv := startLoopback(t, nil)
	dst := net.UDPAddrFromAddrPort(srv.TFTPAddr())
	// Long, but well inside one datagram.
	long := strings.Repeat("x", tftpMaxBlockSize-100)
	const requests = 50
	buf := make([]byte, 1<<16)
	oversized, largest := 0, ""
	for range requests {
		// Each request from a port of its own, as separate clients send.
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		pkt := append(append(append([]byte{0, 1}, long...), 0), "octet\x00"...)
		if _, err := conn.WriteTo(pkt, dst); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard against a hang, not an assertion
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer to a read request for a %d-byte name: %v", len(long), err)
		}
		if op := binary.BigEndian.Uint16(buf[:2]); op != 5 {
			t.Fatalf("answer opcode %d, want ERROR (5)", op)
		}
		if n > testMaxTFTPError {
			oversized++
			largest = fmt.Sprintf("%d bytes: %.80q...", n, buf[4:n])
		}
	}
	if oversized > 0 {
		t.Errorf("%d ERROR packets longer than %d bytes, e.g. %s", oversized, testMaxTFTPError, largest)
	}
	seen := 0
	waitEventMatching(t, srv, func(e Event) bool {
		if e.Kind == KindTFTP {
			seen++
		}
		return seen == requests
	})
	evs := srv.Events(nil)
	checkEventsBounded(t, evs)
	if n := eventsJSONSize(t, evs); n > requests*testMaxEventJSON {
		t.Errorf("event log holds %d bytes of JSON after %d hostile requests, want at most %d", n, requests, requests*testMaxEventJSON)
	}
}
