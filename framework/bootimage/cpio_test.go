package bootimage

import (
	"bytes"
	"compress/gzip"
	"io"
	"strconv"
	"strings"
	"testing"
)

// readCPIO is an independent newc reader: it checks the magic, the 4-byte
// alignment of headers and data, and the trailer.
func readCPIO(t *testing.T, data []byte) []cpioRecord {
	t.Helper()
	var out []cpioRecord
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at offset %d is not 4-byte aligned", off)
		}
		if len(data) < off+110 {
			t.Fatalf("truncated header at offset %d", off)
		}
		h := string(data[off : off+110])
		if h[:6] != "070701" {
			t.Fatalf("bad magic %q at offset %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(h[6+8*i:14+8*i], 16, 32)
			if err != nil {
				t.Fatalf("bad header field %d at offset %d: %v", i, off, err)
			}
			return uint32(v)
		}
		r := cpioRecord{
			Ino: field(0), Mode: field(1), UID: field(2), GID: field(3), Nlink: field(4), Mtime: field(5),
			RMajor: field(9), RMinor: field(10), Check: field(12),
		}
		size, nameSize := int(field(6)), int(field(11))
		nameEnd := off + 110 + nameSize
		r.Name = string(data[off+110 : nameEnd-1])
		if data[nameEnd-1] != 0 {
			t.Fatalf("name of %q is not NUL-terminated", r.Name)
		}
		dataOff := nameEnd + pad4(nameEnd)
		for _, b := range data[nameEnd:dataOff] {
			if b != 0 {
				t.Fatalf("non-zero name padding after %q", r.Name)
			}
		}
		r.Data = data[dataOff : dataOff+size]
		off = dataOff + size + pad4(dataOff+size)
		if r.Name == "TRAILER!!!" {
			if off != len(data) {
				t.Fatalf("%d bytes after the trailer", len(data)-off)
			}
			return out
		}
		out = append(out, r)
	}
}

type cpioRecord struct {
	Name                              string
	Ino, Mode, UID, GID, Nlink, Mtime uint32
	RMajor, RMinor, Check             uint32
	Data                              []byte
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeArchive(t *testing.T, entries ...cpioEntry) []byte {
	t.Helper()
	a := newArchive()
	for _, e := range entries {
		if err := a.add(e); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := a.writeGzip(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCPIORoundTripKeepsEveryKind(t *testing.T) {
	entries := []cpioEntry{
		{Path: "bin/busybox", Kind: kindFile, Perm: 0o755, Data: []byte("\x7fELF odd length")},
		{Path: "bin/sh", Kind: kindSymlink, Data: []byte("busybox")},
		{Path: "dev/console", Kind: kindCharDev, Perm: 0o600, Major: 5, Minor: 1},
		{Path: "tmp", Kind: kindDir, Perm: 0o1777},
		{Path: "etc/empty", Kind: kindFile, Perm: 0o644},
		{Path: "/init", Kind: kindFile, Perm: 0o755, Data: []byte("#!/bin/sh\n")},
	}
	recs := readCPIO(t, gunzip(t, writeArchive(t, entries...)))
	got := map[string]cpioRecord{}
	inodes := map[uint32]string{}
	for _, r := range recs {
		got[r.Name] = r
		if r.UID != 0 || r.GID != 0 || r.Mtime != cpioMtime || r.Check != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d check %d, want 0 0 %d 0", r.Name, r.UID, r.GID, r.Mtime, r.Check, cpioMtime)
		}
		if other, dup := inodes[r.Ino]; dup {
			t.Errorf("%s and %s share inode %d", r.Name, other, r.Ino)
		}
		inodes[r.Ino] = r.Name
	}
	tests := []struct {
		name   string
		mode   uint32
		data   string
		rdev   [2]uint32
		nlinks uint32
	}{
		{"bin", 0o040755, "", [2]uint32{}, 2},
		{"bin/busybox", 0o100755, "\x7fELF odd length", [2]uint32{}, 1},
		{"bin/sh", 0o120777, "busybox", [2]uint32{}, 1},
		{"dev", 0o040755, "", [2]uint32{}, 2},
		{"dev/console", 0o020600, "", [2]uint32{5, 1}, 1},
		{"tmp", 0o041777, "", [2]uint32{}, 2},
		{"etc", 0o040755, "", [2]uint32{}, 2},
		{"etc/empty", 0o100644, "", [2]uint32{}, 1},
		{"init", 0o100755, "#!/bin/sh\n", [2]uint32{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := got[tt.name]
			if !ok {
				t.Fatalf("%s not in archive", tt.name)
			}
			if r.Mode != tt.mode {
				t.Errorf("mode %o, want %o", r.Mode, tt.mode)
			}
			if string(r.Data) != tt.data {
				t.Errorf("data %q, want %q", r.Data, tt.data)
			}
			if r.RMajor != tt.rdev[0] || r.RMinor != tt.rdev[1] {
				t.Errorf("rdev %d:%d, want %d:%d", r.RMajor, r.RMinor, tt.rdev[0], tt.rdev[1])
			}
			if r.Nlink != tt.nlinks {
				t.Errorf("nlink %d, want %d", r.Nlink, tt.nlinks)
			}
		})
	}
	if len(recs) != len(tests) {
		t.Errorf("archive has %d entries, want %d", len(recs), len(tests))
	}
}

func TestArchiveWritesParentsBeforeChildrenInPathOrder(t *testing.T) {
	recs := readCPIO(t, gunzip(t, writeArchive(t,
		cpioEntry{Path: "usr/lib/x/libc.so.6", Kind: kindFile, Perm: 0o755},
		cpioEntry{Path: "usr/bin/dropbearkey", Kind: kindFile, Perm: 0o755},
		cpioEntry{Path: "usr-local", Kind: kindFile, Perm: 0o644},
	)))
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	seen := map[string]bool{}
	for i, n := range names {
		if i > 0 && names[i-1] >= n {
			t.Errorf("%q written after %q", n, names[i-1])
		}
		if i := strings.LastIndex(n, "/"); i >= 0 && !seen[n[:i]] {
			t.Errorf("%q written before its parent %q", n, n[:i])
		}
		seen[n] = true
	}
}

func TestArchiveBytesDoNotDependOnInsertionOrder(t *testing.T) {
	entries := []cpioEntry{
		{Path: "b/two", Kind: kindFile, Perm: 0o644, Data: []byte("2")},
		{Path: "a/one", Kind: kindFile, Perm: 0o755, Data: []byte("1")},
		{Path: "a/link", Kind: kindSymlink, Data: []byte("one")},
		{Path: "c", Kind: kindDir, Perm: 0o700},
	}
	forward := writeArchive(t, entries...)
	var reversed []cpioEntry
	for i := len(entries) - 1; i >= 0; i-- {
		reversed = append(reversed, entries[i])
	}
	if !bytes.Equal(forward, writeArchive(t, reversed...)) {
		t.Error("the same entries added in another order give other bytes")
	}
}

func TestGzipHeaderCarriesNoNameOrTime(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(writeArchive(t, cpioEntry{Path: "x", Kind: kindFile, Perm: 0o644})))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() || zr.Comment != "" || zr.Extra != nil {
		t.Errorf("gzip header has name %q, mtime %v, comment %q, extra %q; want none", zr.Name, zr.ModTime, zr.Comment, zr.Extra)
	}
}

func TestArchiveAdd(t *testing.T) {
	file := func(p, data string) cpioEntry {
		return cpioEntry{Path: p, Kind: kindFile, Perm: 0o644, Data: []byte(data)}
	}
	tests := []struct {
		name    string
		entries []cpioEntry
		wantErr string
	}{
		{"identical duplicate is accepted", []cpioEntry{file("lib/libc.so.6", "x"), file("lib/libc.so.6", "x")}, ""},
		{"explicit directory mode overrides implied parent", []cpioEntry{file("root/.ssh/k", ""), {Path: "root", Kind: kindDir, Perm: 0o700}}, ""},
		{"conflicting duplicate is refused", []cpioEntry{file("etc/passwd", "a"), file("etc/passwd", "b")}, "different content"},
		{"file as parent is refused", []cpioEntry{file("etc", ""), file("etc/passwd", "")}, "not a directory"},
		{"path above root is refused", []cpioEntry{file("../escape", "")}, "not below the root"},
		{"root itself is refused", []cpioEntry{file("/", "")}, "not below the root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newArchive()
			var err error
			for _, e := range tt.entries {
				if err = a.add(e); err != nil {
					break
				}
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("add: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("add: error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestArchiveExplicitDirectoryModeIsWritten(t *testing.T) {
	recs := readCPIO(t, gunzip(t, writeArchive(t,
		cpioEntry{Path: "root/.ssh/authorized_keys", Kind: kindFile, Perm: 0o600},
		cpioEntry{Path: "root", Kind: kindDir, Perm: 0o700},
	)))
	for _, r := range recs {
		if r.Name == "root" && r.Mode != 0o040700 {
			t.Errorf("root has mode %o, want %o", r.Mode, 0o040700)
		}
	}
}
