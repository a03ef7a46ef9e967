package pxe

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// logLines decodes JSON log lines into their messages and suppression counts.
func logLines(t *testing.T, out *bytes.Buffer) (msgs []string, suppressed int) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Msg        string `json:"msg"`
			Suppressed int    `json:"suppressed"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msgs = append(msgs, rec.Msg)
		suppressed += rec.Suppressed
	}
	return msgs, suppressed
}

func TestLogLinesAreRateLimitedAndCounted(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	h := newLimitedHandler(slog.NewJSONHandler(&out, nil), clock.now)
	log := slog.New(h).With("component", "pxe")

	const flood = 10 * logBurst
	for range flood {
		log.Info("pxe event")
	}
	msgs, suppressed := logLines(t, &out)
	if len(msgs) != logBurst || suppressed != 0 {
		t.Fatalf("a flood at one instant logged %d lines (%d suppressed reported), want the burst of %d and no report yet", len(msgs), suppressed, logBurst)
	}

	// One second later logRate lines may pass; the first reports the count.
	clock.t = clock.t.Add(time.Second)
	out.Reset()
	for range flood {
		log.Info("pxe event")
	}
	msgs, suppressed = logLines(t, &out)
	if len(msgs) != logRate+1 || msgs[0] != SuppressedMessage || suppressed != flood-logBurst {
		t.Fatalf("after a second: %d lines, first %q, %d reported suppressed; want %d event lines after one report of %d",
			len(msgs), msgs[0], suppressed, logRate, flood-logBurst)
	}

	// Stop reports the tail of the flood that nothing came after.
	out.Reset()
	h.flush(t.Context())
	msgs, suppressed = logLines(t, &out)
	if len(msgs) != 1 || msgs[0] != SuppressedMessage || suppressed != flood-logRate {
		t.Errorf("flush logged %v with %d suppressed, want one report of %d", msgs, suppressed, flood-logRate)
	}
	out.Reset()
	h.flush(t.Context())
	if out.Len() != 0 {
		t.Errorf("second flush logged %q, want nothing", out.String())
	}
}

func TestEventLogStaysBoundedInBytes(t *testing.T) {
	l := newEventLog(discardLogger())
	l.maxBytes = 64 << 10
	big := strings.Repeat("\x01", 1<<20) // JSON escapes each byte to six
	for i := range 1000 {
		l.record(Event{Kind: KindHTTP, Path: big, Reason: big, Detail: big, UserClass: big, Bytes: int64(i)})
	}
	evs := l.list("")
	if n := eventsJSONSize(t, evs); n > l.maxBytes {
		t.Errorf("log keeps %d bytes of JSON, limit %d", n, l.maxBytes)
	}
	if len(evs) == 0 || evs[len(evs)-1].Bytes != 999 {
		t.Fatalf("newest event lost: %d events kept", len(evs))
	}
	for _, s := range []string{evs[0].Path, evs[0].Reason, evs[0].Detail, evs[0].UserClass} {
		if !strings.HasSuffix(s, TruncationMark+"1048576 bytes)") || len(s) > maxFieldBytes+len(TruncationMark)+20 {
			t.Errorf("field of %d bytes ends %q, want %d bytes and the truncation mark", len(s), s[max(0, len(s)-40):], maxFieldBytes)
		}
	}
	// Absolute indexes survive the trimming: a waiter still finds the newest.
	ev, err := l.waitFor(t.Context(), "", func(e Event) bool { return e.Bytes == 999 })
	if err != nil || ev.Bytes != 999 {
		t.Errorf("wait after trimming: %+v, %v", ev, err)
	}
}

func TestClipKeepsUTF8AndSaysHowLong(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 4, "abcd" + TruncationMark + "11 bytes)"},
		{"ab€cd", 3, "ab" + TruncationMark + "7 bytes)"}, // € is 3 bytes: never split it
	}
	for _, tt := range tests {
		if got := clip(tt.in, tt.max); got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestEchoBoundsTheQuotedText(t *testing.T) {
	long := strings.Repeat("\xc6", 43) // the fuzzer's input: each byte quotes to four
	tests := []struct {
		in   string
		want string
	}{
		{"de:00", `"de:00"`},
		{`a"b'c`, `"a\"b'c"`},
		{"tab\there", `"tab\there"`},
		{"€", `"€"`},
		{long, `"` + strings.Repeat(`\xc6`, 15) + `"` + TruncationMark + "43 bytes)"},
	}
	for _, tt := range tests {
		got := echo(tt.in)
		if got != tt.want {
			t.Errorf("echo(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if len(got) > maxEchoBytes+2+len(TruncationMark)+20 {
			t.Errorf("echo(%q) is %d bytes", tt.in, len(got))
		}
	}
}
