package results

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// Names of what the suite puts in the report and in a spec's folder (framework/e2e writes the
// files), which the page shows.
const (
	// TimingsEntry names the report entry that carries a spec's step timings.
	TimingsEntry = "step timings"
	// BootScreenFile is a spec's boot screen, saved for every procedure spec.
	BootScreenFile = "boot-screen.png"
	// ConsoleFile is a failed spec's raw serial console transcript.
	ConsoleFile = "console.log"
	// PXEEventsFile is the PXE server's event log (JSON) of a failed spec.
	PXEEventsFile = "pxe-server-events.json"
)

// The files WriteBundle writes into the artifacts directory and the bundle.
const (
	JUnitFile       = "junit.xml"
	ReportFile      = "report.json"
	TimingsFile     = "timings.json"
	EnvironmentFile = "environment.json"
	PageFile        = "index.html"
)

// BundlePrefix starts every bundle's name: <prefix>-<UTC YYYYMMDD-HHMMSS>.tar.gz.
const BundlePrefix = "pxe-conformance"

// bundleTimeFormat is the bundle name's UTC timestamp.
const bundleTimeFormat = "20060102-150405"

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// maxDirName keeps a spec's folder name within every filesystem's limits.
const maxDirName = 120

// SpecDir is root/<spec>/, a spec's artifact folder: its full text made safe for a path.
func SpecDir(root string, r types.SpecReport) string {
	return filepath.Join(root, specDirName(r))
}

func specDirName(r types.SpecReport) string {
	name := strings.Trim(unsafeChars.ReplaceAllString(r.FullText(), "-"), "-")
	if len(name) > maxDirName {
		name = name[:maxDirName]
	}
	return name
}

// WriteBundle writes the run's reports (junit.xml, report.json, timings.json), env as
// environment.json and the page (index.html) into dir, then packs them with each spec's folder
// (SpecDir) into dir/pxe-conformance-<UTC timestamp>.tar.gz, all under one directory of that
// name. It goes on past a file it cannot write, so that the bundle holds what could be
// written, and returns the bundle's path ("" when there is none) with every error joined.
func WriteBundle(ctx context.Context, dir string, report types.Report, env *Environment) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results bundle: %w", err)
	}
	if env == nil {
		env = NotRead(settings.Config{}, "not read: the run collected no environment")
	}
	var errs []error
	written := map[string]bool{}
	write := func(name string, f func(path string) error) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", name, err))
			return
		}
		if err := f(filepath.Join(dir, name)); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", name, err))
			return
		}
		written[name] = true
	}
	write(JUnitFile, func(p string) error { return reporters.GenerateJUnitReport(report, p) })
	write(ReportFile, func(p string) error { return reporters.GenerateJSONReport(report, p) })
	write(TimingsFile, func(p string) error { return writeJSON(p, Timings(report)) })
	write(EnvironmentFile, func(p string) error { return writeJSON(p, env) })
	write(PageFile, func(p string) error {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := renderPage(f, report, env, dir); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})

	name := BundlePrefix + "-" + time.Now().UTC().Format(bundleTimeFormat)
	path := filepath.Join(dir, name+".tar.gz")
	if err := pack(ctx, path, name, dir, report, written); err != nil {
		return "", errors.Join(append(errs, fmt.Errorf("results bundle %s: %w", path, err))...)
	}
	return path, errors.Join(errs...)
}

// Timings are the specs' step timings by full text: timings.json. A value is the suite's
// procedure.Marks in this process and decoded JSON from a parallel process; both marshal the
// same way.
func Timings(report types.Report) map[string]any {
	out := map[string]any{}
	for _, s := range report.SpecReports {
		for _, e := range s.ReportEntries {
			if e.Name == TimingsEntry {
				out[s.FullText()] = e.Value.GetRawValue()
			}
		}
	}
	return out
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// pack writes the files named in top and each spec's folder under dir into a gzipped tar at
// path, every entry under name/. It writes to a temporary file first, so that a failed pack
// leaves no bundle that looks whole.
func pack(ctx context.Context, path, name, dir string, report types.Report, top map[string]bool) (err error) {
	tmp, err := os.CreateTemp(dir, "."+BundlePrefix+"-*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	gz := gzip.NewWriter(tmp)
	tw := tar.NewWriter(gz)
	for _, f := range []string{JUnitFile, ReportFile, TimingsFile, EnvironmentFile, PageFile} {
		if top[f] {
			if err := addFile(tw, filepath.Join(dir, f), name+"/"+f); err != nil {
				return err
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range report.SpecReports {
		sub := specDirName(r)
		if sub == "" || seen[sub] {
			continue
		}
		seen[sub] = true
		root := filepath.Join(dir, sub)
		if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			return addFile(tw, p, name+"/"+filepath.ToSlash(rel))
		})
		if err != nil {
			return fmt.Errorf("pack %s: %w", root, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file private; the bundle is as readable as the reports beside it.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that grows meanwhile (a log still written) is packed as it was when opened.
	if _, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	return nil
}
