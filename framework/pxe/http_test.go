package pxe

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// get fetches url from the server under test and returns status and body.
func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	return getFrom(t, netip.Addr{}, method, url)
}

// getFrom is get with the connection's source address set to from (any
// loopback address works on lo), as a guest holding a reservation fetches.
func getFrom(t *testing.T, from netip.Addr, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := http.DefaultClient
	if from.IsValid() {
		dialer := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))}
		tr := &http.Transport{DialContext: dialer.DialContext}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

var nonceRE = regexp.MustCompile(`pxec\.nonce=([0-9a-f]+)`)

func TestScriptPerMACWithFreshNonce(t *testing.T) {
	srv := startLoopback(t, nil)
	base := srv.BaseURL()
	res := loopbackConfig(t).Reservations
	tests := []struct {
		mac      string
		from     netip.Addr // the reservation's address, where the guest fetches from
		wantArgs string
	}{
		{testMAC.String(), res[0].IP, "initrd=initrd.img console=ttyS0,115200 quiet pxec.password=secret pxec.mac=de:00:00:00:00:de pxec.nonce="},
		{otherMAC.String(), res[1].IP, "initrd=initrd.img console=ttyS0,115200 quiet pxec.mac=de:00:00:00:00:01 pxec.nonce="},
		// Other MAC spellings reach the same script; the script always uses the colon form.
		{"DE-00-00-00-00-01", res[1].IP, "initrd=initrd.img console=ttyS0,115200 quiet pxec.mac=de:00:00:00:00:01 pxec.nonce="},
	}
	for _, tt := range tests {
		t.Run(tt.mac, func(t *testing.T) {
			var nonces []string
			for range 2 {
				code, body := getFrom(t, tt.from, http.MethodGet, base+"/ipxe/"+tt.mac)
				if code != http.StatusOK {
					t.Fatalf("status %d: %s", code, body)
				}
				lines := strings.Split(strings.TrimRight(body, "\n"), "\n")
				want := []string{
					"#!ipxe",
					"kernel " + base + "/vmlinuz " + tt.wantArgs,
					"initrd " + base + "/initrd.img",
					"boot",
				}
				if len(lines) != len(want) {
					t.Fatalf("script has %d lines, want %d:\n%s", len(lines), len(want), body)
				}
				for i := range want {
					if !strings.HasPrefix(lines[i], want[i]) {
						t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], want[i])
					}
				}
				m := nonceRE.FindStringSubmatch(lines[1])
				if m == nil || len(m[1]) != 32 || !strings.HasSuffix(lines[1], m[0]) {
					t.Fatalf("kernel line %q lacks a trailing 32-hex-digit nonce", lines[1])
				}
				nonces = append(nonces, m[1])
			}
			if nonces[0] == nonces[1] {
				t.Errorf("two fetches got the same nonce %s", nonces[0])
			}
			mac, _ := parseMAC(tt.mac)
			var recorded []string
			for _, ev := range srv.Events(mac) {
				if ev.Kind == KindScript && ev.Status == http.StatusOK {
					recorded = append(recorded, ev.Nonce)
				}
			}
			if strings.Join(recorded[len(recorded)-2:], ",") != strings.Join(nonces, ",") {
				t.Errorf("script events record nonces %v, want %v", recorded, nonces)
			}
		})
	}
}

func TestScriptForUnknownMACIsNotFound(t *testing.T) {
	srv := startLoopback(t, nil)
	code, _ := get(t, http.MethodGet, srv.BaseURL()+"/ipxe/"+strangerM.String())
	if code != http.StatusNotFound {
		t.Errorf("status %d, want 404", code)
	}
	ev := waitEvent(t, srv, strangerM, KindScript)
	if ev.Status != http.StatusNotFound || ev.Reason != ReasonNotAllowListed || ev.Nonce != "" {
		t.Errorf("event %+v, want 404 %q without nonce", ev, ReasonNotAllowListed)
	}
	code, body := get(t, http.MethodGet, srv.BaseURL()+"/ipxe/not-a-mac")
	if code != http.StatusBadRequest || !strings.Contains(body, `"not-a-mac"`) {
		t.Errorf("bad MAC: status %d body %q, want 400 naming the value", code, body)
	}
}

func TestEventsEndpoint(t *testing.T) {
	srv := startLoopback(t, nil)
	base := srv.BaseURL()
	getFrom(t, loopbackConfig(t).Reservations[0].IP, http.MethodGet, base+"/ipxe/"+testMAC.String())
	get(t, http.MethodGet, base+"/ipxe/"+strangerM.String())

	tests := []struct {
		name     string
		query    string
		wantCode int
		wantMACs []string // MACs of the returned events, in order
		wantBody string   // substring for error responses
	}{
		{"one MAC", "?mac=" + testMAC.String(), http.StatusOK, []string{testMAC.String()}, ""},
		{"one MAC, other spelling", "?mac=DE-00-00-00-00-DE", http.StatusOK, []string{testMAC.String()}, ""},
		{"MAC without events", "?mac=" + otherMAC.String(), http.StatusOK, []string{}, ""},
		{"all", "", http.StatusOK, []string{testMAC.String(), strangerM.String()}, ""},
		{"malformed MAC", "?mac=zz:zz", http.StatusBadRequest, nil, `"zz:zz"`},
		{"8-byte MAC", "?mac=01:02:03:04:05:06:07:08", http.StatusBadRequest, nil, "6-byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, http.MethodGet, base+"/events"+tt.query)
			if code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tt.wantCode, body)
			}
			if tt.wantCode != http.StatusOK {
				if !strings.Contains(body, tt.wantBody) {
					t.Errorf("body %q does not name %q", body, tt.wantBody)
				}
				return
			}
			var evs []Event
			if err := json.Unmarshal([]byte(body), &evs); err != nil {
				t.Fatalf("decode %q: %v", body, err)
			}
			if evs == nil {
				t.Fatalf("body %q is not a JSON array", body)
			}
			var macs []string
			for _, ev := range evs {
				macs = append(macs, ev.MAC)
			}
			if strings.Join(macs, " ") != strings.Join(tt.wantMACs, " ") {
				t.Errorf("event MACs %v, want %v", macs, tt.wantMACs)
			}
		})
	}

	// The JSON carries the fields under their documented names.
	_, body := get(t, http.MethodGet, base+"/events?mac="+testMAC.String())
	for _, key := range []string{`"time"`, `"mac"`, `"kind": "script"`, `"protocol": "http"`, `"nonce"`, `"status": 200`, `"bytes"`} {
		if !strings.Contains(body, key) {
			t.Errorf("events JSON lacks %s:\n%s", key, body)
		}
	}
}

func TestHTTPServesFilesAndRecordsBytes(t *testing.T) {
	srv := startLoopback(t, nil)
	base := srv.BaseURL()
	for _, name := range []string{"vmlinuz", "initrd.img", "sub/nested.txt"} {
		code, body := get(t, http.MethodGet, base+"/"+name)
		if code != http.StatusOK || body != testFiles[name] {
			t.Errorf("GET /%s: status %d body %q, want 200 %q", name, code, body, testFiles[name])
		}
	}
	// Loopback requests come from 127.0.0.1, which no reservation holds.
	evs := srv.Events(nil)
	var got []Event
	for _, ev := range evs {
		if ev.Kind == KindHTTP {
			got = append(got, ev)
		}
	}
	if len(got) != 3 {
		t.Fatalf("http events %+v, want 3", got)
	}
	for _, ev := range got {
		name := strings.TrimPrefix(ev.Path, "/")
		if ev.Bytes != int64(len(testFiles[name])) || ev.Status != http.StatusOK || ev.Reason != "" || ev.Duration <= 0 {
			t.Errorf("event %+v, want status 200 and %d bytes", ev, len(testFiles[name]))
		}
	}
}

func TestHTTPAttributesFilesToReservationByAddress(t *testing.T) {
	srv := startLoopback(t, nil)
	// Connect from 127.0.0.2, testMAC's reserved address, as the booted guest would.
	getFrom(t, loopbackConfig(t).Reservations[0].IP, http.MethodGet, srv.BaseURL()+"/initrd.img")
	ev := waitEvent(t, srv, testMAC, KindHTTP)
	if ev.Path != "/initrd.img" || ev.Bytes != int64(len(testFiles["initrd.img"])) || ev.Status != http.StatusOK {
		t.Errorf("event %+v, want /initrd.img with its size", ev)
	}
	if !strings.HasPrefix(ev.Remote, "127.0.0.2:") {
		t.Errorf("remote %q, want 127.0.0.2", ev.Remote)
	}
}

func TestHTTPRefusesTraversalAndWrites(t *testing.T) {
	srv := startLoopback(t, nil)
	base := srv.BaseURL()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/sub", http.StatusNotFound},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/%2e%2e/%2e%2e/etc/passwd", http.StatusNotFound},
		{http.MethodPut, "/vmlinuz", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/vmlinuz", http.StatusMethodNotAllowed},
		{http.MethodPost, "/ipxe/" + testMAC.String(), http.StatusMethodNotAllowed},
		{http.MethodHead, "/vmlinuz", http.StatusOK},
	}
	for _, tt := range tests {
		code, body := get(t, tt.method, base+tt.path)
		if code != tt.want {
			t.Errorf("%s %s: status %d, want %d (%s)", tt.method, tt.path, code, tt.want, body)
		}
		if strings.Contains(body, "secret") || strings.Contains(body, "root:") {
			t.Errorf("%s %s leaked %q", tt.method, tt.path, body)
		}
	}
	code, body := get(t, http.MethodGet, base+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("healthz: %d %q", code, body)
	}
}

// Issue 13, defect 2: a script fetch from any address but the MAC's own
// was served with a fresh nonce that became the MAC's last one, so the
// nonce check of the guest's real boot failed after a stray fetch.
func TestScriptFetchFromAnotherAddressKeepsTheBootNonce(t *testing.T) {
	srv := startLoopback(t, nil)
	res := loopbackConfig(t).Reservations
	url := srv.ScriptURL(testMAC)
	if code, body := getFrom(t, res[0].IP, http.MethodGet, url); code != http.StatusOK {
		t.Fatalf("guest's own fetch: status %d: %s", code, body)
	}
	want := LastScriptNonce(srv.Events(testMAC))
	if want == "" {
		t.Fatal("guest's own fetch recorded no nonce")
	}
	// The server's own address, and another guest's reserved one.
	for _, from := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), res[1].IP} {
		code, body := getFrom(t, from, http.MethodGet, url)
		if got := LastScriptNonce(srv.Events(testMAC)); got != want {
			t.Errorf("fetch from %s (status %d) changed the last nonce from %s to %s", from, code, want, got)
		}
		if strings.Contains(body, "pxec.password") {
			t.Errorf("fetch from %s got the script with its password: %q", from, body)
		}
	}
	var refused int
	for _, ev := range srv.Events(testMAC) {
		if ev.Kind == KindScript && ev.Reason == ReasonNotReservedAddress {
			refused++
			if ev.Status != http.StatusForbidden || ev.Nonce != "" || !strings.Contains(ev.Detail, "boot nonce unchanged") {
				t.Errorf("refused fetch recorded as %+v", ev)
			}
		}
	}
	if refused != 2 {
		t.Errorf("%d fetches recorded as %q, want 2; events %+v", refused, ReasonNotReservedAddress, srv.Events(testMAC))
	}
}
