package console

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCleanerRemovesTerminalControl(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{
			name:   "cursor positioning between letters",
			chunks: []string{"i\x1b[1;1HP\x1b[0mXE"},
			want:   "iPXE",
		},
		{
			name:   "escape split across reads",
			chunks: []string{"i\x1b[", "1;1HP\x1b", "[0mX", "E"},
			want:   "iPXE",
		},
		{
			name:   "escape split after every byte",
			chunks: strings.Split("i\x1b[1;1HP\x1b[0;36mX\x1b(BE", ""),
			want:   "iPXE",
		},
		{
			name:   "SeaBIOS screen reset and private mode",
			chunks: []string{"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n"},
			want:   "SeaBIOS (version 1.16.2-debian-1.16.2-1)\n",
		},
		{
			name:   "iPXE colours around its banner",
			chunks: []string{"\x1b[0;1miPXE 1.0.0+git-20190125.36a4c85-5.1\x1b[0m -- Open Source Network Boot Firmware -- \x1b[0;36mhttp://ipxe.org\x1b[0m\r\n"},
			want:   "iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org\n",
		},
		{
			name:   "EDK2 mode set and cursor home",
			chunks: []string{"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[1m\x1b[37m\x1b[40miPXE\x1b[0m"},
			want:   "iPXE",
		},
		{
			name:   "charset designations",
			chunks: []string{"\x1b(Bo\x1b)0k\x1b%G"},
			want:   "ok",
		},
		{
			name:   "OSC window title ended by BEL",
			chunks: []string{"\x1b]0;root@pxec-guest:~\x07pxec-guest:~# "},
			want:   "pxec-guest:~# ",
		},
		{
			name:   "OSC ended by string terminator across reads",
			chunks: []string{"\x1b]2;tit", "le\x1b", "\\done"},
			want:   "done",
		},
		{
			name:   "DCS reply",
			chunks: []string{"\x1bP1$r0m\x1b\\x"},
			want:   "x",
		},
		{
			name:   "single-character escapes",
			chunks: []string{"\x1b7a\x1b8\x1b=b\x1b>\x1bMc\x1bD"},
			want:   "abc",
		},
		{
			name:   "cursor position query from busybox line editing",
			chunks: []string{"\x1b[6n~ # "},
			want:   "~ # ",
		},
		{
			name:   "CR, NUL and BEL dropped",
			chunks: []string{"a\x00b\x07\r\n\r\nc"},
			want:   "ab\n\nc",
		},
		{
			name:   "iPXE erase idiom leaves no gap",
			chunks: []string{"line...\b \b\b \b\b \bnet0: up"},
			want:   "line...net0: up",
		},
		{
			name:   "erase idiom split across reads",
			chunks: []string{"a\b", " ", "\bb"},
			want:   "ab",
		},
		{
			name:   "lone backspace dropped",
			chunks: []string{"ab\bc"},
			want:   "abc",
		},
		{
			name:   "backspace and space without a second backspace keep the space",
			chunks: []string{"a\b b"},
			want:   "a b",
		},
		{
			name:   "escape aborted by a new escape",
			chunks: []string{"\x1b[12\x1b[0mX"},
			want:   "X",
		},
		{
			name:   "escape followed by a line feed keeps the line feed",
			chunks: []string{"a\x1b\nb"},
			want:   "a\nb",
		},
		{
			name:   "line feed inside CSI kept",
			chunks: []string{"a\x1b[1\n;2mb"},
			want:   "a\nb",
		},
		{
			name:   "UTF-8 kept",
			chunks: []string{"Gr\xc3\xbc\xc3", "\x9fe \xe2\x94\x80"},
			want:   "Grüße ─",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cleaner
			var got []byte
			for _, ch := range tt.chunks {
				got = c.feed(got, []byte(ch))
			}
			if string(got) != tt.want {
				t.Errorf("cleaned %q = %q, want %q", strings.Join(tt.chunks, ""), got, tt.want)
			}
		})
	}
}

func TestCleanerGivesUpOnRunawaySequence(t *testing.T) {
	var c cleaner
	in := "\x1b[" + strings.Repeat("1;", 100) + "\nlogin: "
	got := string(c.feed(nil, []byte(in)))
	if !strings.HasSuffix(got, "\nlogin: ") {
		t.Errorf("cleaned runaway CSI = %q, want the text after it kept", got)
	}
	in = "\x1b]0;" + strings.Repeat("x", 2*maxStringLen) + "\nlogin: "
	got = string(c.feed(nil, []byte(in)))
	if !strings.HasSuffix(got, "\nlogin: ") {
		t.Errorf("cleaned unterminated OSC = %q, want the text after it kept", got)
	}
}

func TestCleanerResetForgetsHalfSequence(t *testing.T) {
	var c cleaner
	c.feed(nil, []byte("abc\x1b["))
	c.reset()
	// Without the reset, "h" would end the CSI and vanish.
	if got := string(c.feed(nil, []byte("hello"))); got != "hello" {
		t.Errorf("after reset cleaned %q, want %q", got, "hello")
	}
}

// Captured from QEMU 7.2 under TCG on a machine like CI's: SeaBIOS with
// its serial console, then iPXE from the virtio-net ROM, on a network with
// no DHCP server; and the same with OVMF.
var captures = []struct {
	file  string
	lines []string // lines the cleaned text must contain
}{
	{
		file: "testdata/seabios-ipxe-no-dhcp.raw",
		lines: []string{
			"SeaBIOS (version 1.16.2-debian-1.16.2-1)",
			"iPXE (PCI 00:02.0) starting execution...ok",
			"iPXE initialising devices...ok",
			"  [Link:up, TX:0 TXE:0 RX:0 RXE:0]",
			"No more network devices",
		},
	},
	{
		file: "testdata/ovmf-ipxe-no-dhcp.raw",
		lines: []string{
			"iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org",
			"Configuring (net0 de:00:00:00:00:de).................. No configuration methods succeeded (http://ipxe.org/040ee186)",
			">>Start PXE over IPv4.",
		},
	},
}

func TestCleanerTurnsFirmwareCapturesIntoPlainLines(t *testing.T) {
	for _, tc := range captures {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			text := string(Clean(raw))
			for _, b := range []byte{0x1b, '\r', '\b', 0} {
				if i := strings.IndexByte(text, b); i >= 0 {
					t.Errorf("cleaned text keeps byte %#x at %d: %q", b, i, text[max(0, i-20):min(len(text), i+20)])
				}
			}
			lines := strings.Split(text, "\n")
			for _, want := range tc.lines {
				if !slices.Contains(lines, want) {
					t.Errorf("cleaned text lacks line %q; text:\n%s", want, text)
				}
			}
		})
	}
}

func TestCleanerGivesSameTextForEverySplit(t *testing.T) {
	for _, tc := range captures {
		raw, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var whole cleaner
		want := whole.feed(nil, raw)
		for i := range raw {
			var c cleaner
			got := c.feed(nil, raw[:i])
			got = c.feed(got, raw[i:])
			if !bytes.Equal(got, want) {
				t.Fatalf("%s split at byte %d cleaned to\n%q\nwant\n%q", tc.file, i, got, want)
			}
		}
	}
}

func TestPhraseMatchesAcrossSeaBIOSLineWrap(t *testing.T) {
	raw, err := os.ReadFile("testdata/seabios-ipxe-no-dhcp.raw")
	if err != nil {
		t.Fatal(err)
	}
	var c cleaner
	text := c.feed(nil, raw)
	// SeaBIOS broke this capture's line at column 80, between "methods"
	// and "succeeded"; and "http://ipxe.org" inside the URL.
	literal := regexp.MustCompile(`No configuration methods succeeded`)
	if literal.Match(text) {
		t.Fatalf("capture no longer shows the line wrap this test is about; text:\n%s", text)
	}
	if !Phrase("No configuration methods succeeded").Match(text) {
		t.Errorf("Phrase does not match across the wrap; text:\n%s", text)
	}
	if !Phrase("Network Boot Firmware -- http://ipxe.org").Match(text) {
		t.Errorf("Phrase does not match across a wrap inside a word; text:\n%s", text)
	}
}

func TestAnyPhraseMatchesEachOfItsPhrasesAcrossWraps(t *testing.T) {
	re := AnyPhrase("Nothing to boot", "No bootable device")
	for text, want := range map[string]bool{
		"Nothing to b\noot: No such file": true,
		"No bootable\ndevice.":            true,
		"No bootable thing":               false,
		"Nothing to see; no bootable yet": false,
	} {
		if got := re.MatchString(text); got != want {
			t.Errorf("AnyPhrase(...).MatchString(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestPhraseMatchesOnlyItsWords(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"Connection timed out", true},
		{"Connection  timed\nout", true},
		{"Connec\ntion timed out", true},
		{"Connection timed-out", false},
		{"Connection timed\n\nout (http://ipxe.org/4c0a6035)", true},
		{"Connection was timed out", false},
		{"Conn\n\nection timed out", false},
	}
	re := Phrase("Connection timed out")
	for _, tt := range tests {
		if got := re.MatchString(tt.text); got != tt.want {
			t.Errorf("Phrase(%q).MatchString(%q) = %v, want %v", "Connection timed out", tt.text, got, tt.want)
		}
	}
}
