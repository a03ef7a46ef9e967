package bootimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// walkDeb calls fn for every member of a package's data tarball, which
// `dpkg-deb --fsys-tarfile` streams; nothing lands on disk.
func walkDeb(ctx context.Context, deb string, fn func(*tar.Header, io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := hostCmd{name: "dpkg-deb", args: []string{"--fsys-tarfile", deb}}
	cmd := c.exec(ctx)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start %s: %w", c, err)
	}
	if err := cmd.Start(); err != nil {
		return &command.Error{Command: c.String(), Err: err}
	}
	walkErr := func() error {
		tr := tar.NewReader(stdout)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read tar stream: %w", err)
			}
			if err := fn(hdr, tr); err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
	}()
	if walkErr != nil {
		// Stop dpkg-deb rather than draining hundreds of megabytes.
		cancel()
		_ = cmd.Wait()
		return fmt.Errorf("%s: %w", c, walkErr)
	}
	// Drain trailing padding so dpkg-deb does not die of a broken pipe.
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return &command.Error{Command: c.String(), Output: stderr.String(), Err: err}
	}
	return nil
}

// unpackDeb unpacks deb with `dpkg-deb -x` into dir, which appears only once
// complete: it is unpacked beside it and renamed into place, so a crash or a
// concurrent unpack never leaves a half-filled tree under the final name.
func unpackDeb(ctx context.Context, deb, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-unpack-")
	if err != nil {
		return fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
	}
	defer os.RemoveAll(tmp)
	if _, err := (hostCmd{name: "dpkg-deb", args: []string{"-x", deb, tmp}}).run(ctx); err != nil {
		return fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(dir); statErr == nil {
			return nil // someone else finished first
		}
		return fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
	}
	return nil
}
