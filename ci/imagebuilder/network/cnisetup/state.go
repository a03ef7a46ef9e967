package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// entry is one thing an installation put on the node: a file with the hash it was written
// with, or a directory it created.
type entry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256,omitempty"`
	Dir    bool   `json:"dir,omitempty"`
}

// state is an installation's record of what it put on the node, kept in a file so that a
// restarted pod and the cleanup command know what is theirs.
type state struct {
	file    string
	Entries []entry `json:"entries"`
}

func loadState(file string) (*state, error) {
	st := &state{file: file}
	raw, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read install record: %w", err)
	}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("read install record %s: %w", file, err)
	}
	return st, nil
}

func (s *state) save() error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.file, raw, 0o644)
}

func (s *state) find(path string) (entry, bool) {
	for _, e := range s.Entries {
		if e.Path == path {
			return e, true
		}
	}
	return entry{}, false
}

// record notes path (a file with its new hash, or a directory) as ours and saves the record.
func (s *state) record(e entry) error {
	for i := range s.Entries {
		if s.Entries[i].Path == e.Path {
			s.Entries[i] = e
			return s.save()
		}
	}
	s.Entries = append(s.Entries, e)
	return s.save()
}

// forget drops path from the record and saves it.
func (s *state) forget(path string) error {
	kept := s.Entries[:0]
	for _, e := range s.Entries {
		if e.Path != path {
			kept = append(kept, e)
		}
	}
	s.Entries = kept
	return s.save()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func bytesSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeAtomic writes data next to path and renames it into place, so a reader (containerd
// loading CNI configs, kubelet running a plugin) never sees half a file, and a plugin binary
// that is running is replaced rather than overwritten ("text file busy").
func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".pxec-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// installBinaries copies each named binary from the image to the node's plugin directory
// when the node has none of that name, or when the one there is ours from an earlier run and
// differs from the image's. A binary of that name that someone else installed is kept.
func installBinaries(c config, st *state, names []string) error {
	for _, name := range names {
		src := filepath.Join(c.source, name)
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read %s from the image: %w", name, err)
		}
		nodePath := filepath.Join(c.binDir, name)
		dst := c.host(nodePath)
		want := bytesSHA256(data)
		have, err := fileSHA256(dst)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Absent: ours to install.
		case err != nil:
			return fmt.Errorf("read %s: %w", nodePath, err)
		default:
			e, ours := st.find(nodePath)
			if !ours || e.SHA256 != have {
				logf("kept %s: the node already had it", nodePath)
				continue
			}
			if have == want {
				logf("%s is already installed", nodePath)
				continue
			}
		}
		if err := writeAtomic(dst, data, 0o755); err != nil {
			return fmt.Errorf("install %s: %w", nodePath, err)
		}
		if err := st.record(entry{Path: nodePath, SHA256: want}); err != nil {
			return fmt.Errorf("record %s: %w", nodePath, err)
		}
		logf("installed %s", nodePath)
	}
	return nil
}

// removeOurs removes the file at node path p if it still is what we wrote, and forgets it.
func removeOurs(c config, st *state, p string) error {
	e, ok := st.find(p)
	if !ok {
		return nil
	}
	if e.Dir {
		if err := os.Remove(c.host(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logf("kept %s: %v", p, err)
			return nil
		}
		return st.forget(p)
	}
	have, err := fileSHA256(c.host(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", p, err)
	case have != e.SHA256:
		logf("kept %s: it changed since we wrote it", p)
	default:
		if err := os.Remove(c.host(p)); err != nil {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		logf("removed %s", p)
	}
	return st.forget(p)
}

// cleanup removes everything the installation's record lists, newest first, and then the
// record itself.
func cleanup(c config) error {
	file := c.host(c.statePath())
	st, err := loadState(file)
	if err != nil {
		return err
	}
	for i := len(st.Entries) - 1; i >= 0; i-- {
		if err := removeOurs(c, st, st.Entries[i].Path); err != nil {
			return err
		}
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove install record: %w", err)
	}
	logf("cleanup of %s done", c.owner)
	return nil
}
