package bootimage

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// entryKind is the type of one initramfs entry.
type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindCharDev
)

// cpioEntry is one member of an initramfs archive.
type cpioEntry struct {
	// Path is relative and slash-separated, with no leading "./" or "/".
	Path string
	Kind entryKind
	// Perm holds the Unix permission bits (07777: setuid, setgid and sticky
	// included); the type bits come from Kind.
	Perm uint32
	// Data is the file content, or the target of a symlink.
	Data []byte
	// Major and Minor are the device numbers of a character device.
	Major, Minor uint32
}

// cpio mode type bits (from the newc format, equal to Linux's S_IF*).
const (
	cpioTypeDir     = 0o040000
	cpioTypeFile    = 0o100000
	cpioTypeSymlink = 0o120000
	cpioTypeCharDev = 0o020000
)

// cpioMtime is the modification time of every entry: a constant, so the same
// inputs give the same bytes.
const cpioMtime = 0

// archive collects initramfs entries by path and writes them in a
// reproducible order.
type archive struct {
	entries map[string]cpioEntry
}

func newArchive() *archive {
	return &archive{entries: map[string]cpioEntry{}}
}

// add puts e into the archive together with any missing parent directories
// (mode 0755). Adding the same path twice is an error unless both entries are
// identical, which lets independent steps ask for the same directory or
// library.
func (a *archive) add(e cpioEntry) error {
	p, err := cleanArchivePath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if old, ok := a.entries[dir]; ok {
			if old.Kind != kindDir {
				return fmt.Errorf("add %s to initramfs: parent %s is not a directory", p, dir)
			}
			continue
		}
		a.entries[dir] = cpioEntry{Path: dir, Kind: kindDir, Perm: 0o755}
	}
	if old, ok := a.entries[p]; ok {
		if old.Kind == kindDir && e.Kind == kindDir {
			// An explicit mode wins over an implied parent's default.
			a.entries[p] = e
			return nil
		}
		if old.Kind != e.Kind || old.Perm != e.Perm || string(old.Data) != string(e.Data) || old.Major != e.Major || old.Minor != e.Minor {
			return fmt.Errorf("add %s to initramfs: already present with different content", p)
		}
		return nil
	}
	a.entries[p] = e
	return nil
}

func cleanArchivePath(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(strings.TrimPrefix(p, "./"), "/"))
	if c == "." || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("initramfs path %q is not below the root", p)
	}
	return c, nil
}

// sorted returns the entries by path; a parent sorts before its children
// because it is a prefix of them.
func (a *archive) sorted() []cpioEntry {
	out := make([]cpioEntry, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// writeGzip writes the archive as a gzip-compressed cpio newc stream. The
// gzip header carries no name and no time, so equal archives compress to
// equal bytes.
func (a *archive) writeGzip(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("create gzip writer: %w", err)
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	cw := newCPIOWriter(bw)
	for _, e := range a.sorted() {
		if err := cw.write(e); err != nil {
			return err
		}
	}
	if err := cw.close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish gzip stream: %w", err)
	}
	return nil
}

// cpioWriter writes the "newc" (SVR4, no CRC) format that the kernel's
// initramfs unpacker reads, with uid and gid 0 and inodes numbered in write
// order.
type cpioWriter struct {
	w   io.Writer
	ino uint32
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w}
}

func (c *cpioWriter) write(e cpioEntry) error {
	var typ uint32
	nlink := uint32(1)
	switch e.Kind {
	case kindDir:
		typ = cpioTypeDir
		nlink = 2
		e.Data = nil
	case kindFile:
		typ = cpioTypeFile
	case kindSymlink:
		typ = cpioTypeSymlink
		e.Perm = 0o777
	case kindCharDev:
		typ = cpioTypeCharDev
		e.Data = nil
	default:
		return fmt.Errorf("write %s to cpio: unknown entry kind %d", e.Path, e.Kind)
	}
	c.ino++
	return c.writeRecord(e.Path, c.ino, typ|e.Perm&0o7777, nlink, e.Major, e.Minor, e.Data)
}

// close writes the trailer record that ends the archive.
func (c *cpioWriter) close() error {
	return c.writeRecord("TRAILER!!!", 0, 0, 1, 0, 0, nil)
}

func (c *cpioWriter) writeRecord(name string, ino, mode, nlink, rmajor, rminor uint32, data []byte) error {
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, cpioMtime, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if _, err := c.w.Write(buf); err != nil {
		return fmt.Errorf("write cpio header of %s: %w", name, err)
	}
	if len(data) == 0 {
		return nil
	}
	if _, err := c.w.Write(data); err != nil {
		return fmt.Errorf("write cpio data of %s: %w", name, err)
	}
	if _, err := c.w.Write(make([]byte, pad4(len(data)))); err != nil {
		return fmt.Errorf("write cpio padding of %s: %w", name, err)
	}
	return nil
}

// pad4 is the number of zero bytes that align n to four.
func pad4(n int) int {
	return (4 - n%4) % 4
}
