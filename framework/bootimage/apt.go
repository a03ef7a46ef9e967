package bootimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// Package is one Debian package the payload was built from.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	// SHA256 is the hash of the .deb file, as the archive's index lists it.
	SHA256 string `json:"sha256"`
}

// fileName is the name apt-get download gives the package's .deb: the epoch
// colon is URL-escaped.
func (p Package) fileName() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, strings.ReplaceAll(p.Version, ":", "%3a"), p.Architecture)
}

// unpackName names the package's unpacked tree in the cache.
func (p Package) unpackName() string {
	return strings.TrimSuffix(p.fileName(), ".deb")
}

// errAptUnknown marks apt failures that stale or missing package lists
// explain: an unknown package or version, or a pool file gone from the
// mirror. One apt-get update may cure them.
var errAptUnknown = errors.New("apt does not know the package or version (package lists stale or missing?)")

// aptUnknownOutput recognises those failures in apt's (LC_ALL=C) output.
func aptUnknownOutput(out string) bool {
	re := regexp.MustCompile(`Unable to locate package|No packages found|was not found|has no candidate|Can't select|404\s+Not Found|Packages? .* (is|are) not available`)
	return re.MatchString(out)
}

// apt runs the host's apt tools without changing what is installed.
type apt struct {
	logf func(format string, args ...any)
}

func (a apt) cmd(dir, name string, args ...string) hostCmd {
	return hostCmd{dir: dir, env: []string{"LC_ALL=C"}, name: name, args: args}
}

// run runs an apt command and marks failures that an update may cure.
func (a apt) run(ctx context.Context, c hostCmd) ([]byte, error) {
	out, err := c.run(ctx)
	var ce *command.Error
	if errors.As(err, &ce) && aptUnknownOutput(ce.Output) {
		return out, fmt.Errorf("%w: %w", errAptUnknown, err)
	}
	return out, err
}

// update refreshes the package lists.
func (a apt) update(ctx context.Context) error {
	if _, err := a.cmd("", "apt-get", "-q", "update").run(ctx); err != nil {
		return fmt.Errorf("update apt package lists: %w", err)
	}
	return nil
}

// stanza is one package record of apt-cache show, single-line fields only.
type stanza map[string]string

// show returns the candidate record of each named package, by name. Only
// amd64 and architecture-independent records count: the guest is amd64
// whatever foreign architectures the host enables.
func (a apt) show(ctx context.Context, names ...string) (map[string]stanza, error) {
	args := append([]string{"show", "--no-all-versions"}, names...)
	out, err := a.run(ctx, a.cmd("", "apt-cache", args...))
	if err != nil {
		return nil, fmt.Errorf("look up packages %s: %w", strings.Join(names, " "), err)
	}
	recs := map[string]stanza{}
	cur := stanza{}
	flush := func() {
		name := cur["Package"]
		if arch := cur["Architecture"]; name != "" && (arch == "amd64" || arch == "all") {
			if _, seen := recs[name]; !seen {
				recs[name] = cur
			}
		}
		cur = stanza{}
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			cur[k] = strings.TrimSpace(v)
		}
	}
	flush()
	var missing []string
	for _, n := range names {
		if _, ok := recs[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("look up packages: %w: no amd64 candidate for %s", errAptUnknown, strings.Join(missing, " "))
	}
	return recs, nil
}

// pkg turns a record into a pinned Package.
func (s stanza) pkg() Package {
	return Package{Name: s["Package"], Version: s["Version"], Architecture: s["Architecture"], SHA256: s["SHA256"]}
}

// dependsClosure returns name and every package it depends on, recursively
// (Depends and Pre-Depends only), sorted: what its binaries may load.
func (a apt) dependsClosure(ctx context.Context, name string) ([]string, error) {
	out, err := a.run(ctx, a.cmd("", "apt-cache", "depends", "--recurse",
		"--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", name))
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies of %s: %w", name, err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		// Unindented lines are packages; <name> is a virtual package,
		// name:arch a foreign architecture's.
		if line == "" || line[0] == ' ' || strings.HasPrefix(line, "<") || strings.Contains(line, ":") {
			continue
		}
		seen[strings.TrimSpace(line)] = true
	}
	if !seen[name] {
		return nil, fmt.Errorf("resolve dependencies of %s: %w", name, errAptUnknown)
	}
	return sortedKeys(seen), nil
}

// kernelPackage returns the concrete linux-image package that metapackage
// (linux-image-amd64) depends on.
func (a apt) kernelPackage(ctx context.Context, metapackage string) (string, error) {
	recs, err := a.show(ctx, metapackage)
	if err != nil {
		return "", err
	}
	for _, group := range strings.Split(recs[metapackage]["Depends"], ",") {
		fields := strings.Fields(strings.Split(group, "|")[0])
		if len(fields) > 0 && strings.HasPrefix(fields[0], "linux-image-") && fields[0] != metapackage {
			return fields[0], nil
		}
	}
	return "", fmt.Errorf("resolve kernel of %s: its Depends %q names no linux-image-* package", metapackage, recs[metapackage]["Depends"])
}

// download puts the .deb of each package into dir unless a file with the
// expected hash is there. apt-get download writes into a temporary
// directory; each file is checked and renamed into place, so a reader never
// sees a partial .deb. It returns the .deb paths by package name.
func (a apt) download(ctx context.Context, dir string, pkgs []Package) (map[string]string, error) {
	paths := map[string]string{}
	var missing []Package
	for _, p := range pkgs {
		dst := filepath.Join(dir, p.fileName())
		paths[p.Name] = dst
		if err := checkSHA256(dst, p.SHA256); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return paths, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("download packages: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-download-")
	if err != nil {
		return nil, fmt.Errorf("download packages: %w", err)
	}
	defer os.RemoveAll(tmp)
	// As root, apt would hand the download to the _apt user, who cannot
	// write into our cache.
	args := []string{"download", "-q", "-o", "APT::Sandbox::User=root"}
	var names []string
	for _, p := range missing {
		args = append(args, p.Name+"="+p.Version)
		names = append(names, p.Name+"="+p.Version)
	}
	sort.Strings(names)
	if a.logf != nil {
		a.logf("bootimage: downloading %s", strings.Join(names, " "))
	}
	if _, err := a.run(ctx, a.cmd(tmp, "apt-get", args...)); err != nil {
		return nil, fmt.Errorf("download packages: %w", err)
	}
	for _, p := range missing {
		src := filepath.Join(tmp, p.fileName())
		if err := checkSHA256(src, p.SHA256); err != nil {
			return nil, fmt.Errorf("download %s=%s: %w", p.Name, p.Version, err)
		}
		if err := os.Rename(src, paths[p.Name]); err != nil {
			return nil, fmt.Errorf("download %s=%s: %w", p.Name, p.Version, err)
		}
	}
	return paths, nil
}

// checkSHA256 verifies a file against a hex SHA-256 (any file passes when
// want is empty, as for a local repository without hashes).
func checkSHA256(path, want string) error {
	got, _, err := fileSHA256(path)
	if err != nil {
		return err
	}
	if want != "" && !strings.EqualFold(got, want) {
		return fmt.Errorf("%s has sha256 %s, the package index says %s", filepath.Base(path), got, want)
	}
	return nil
}

// fileSHA256 returns a file's hex SHA-256 and size.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// stateDigest hashes what apt's answers depend on: its configuration paths,
// the package lists and the sources and preferences files (names, sizes,
// modification times). apt-cache re-parses every list on each call where
// its binary cache is disabled, as in Debian's container images, taking
// seconds; an unchanged digest lets Build reuse the last resolution instead.
func (a apt) stateDigest(ctx context.Context) (string, error) {
	out, err := a.cmd("", "apt-config", "shell",
		"L", "Dir::State::lists/d", "S", "Dir::Etc::sourcelist/f", "SP", "Dir::Etc::sourceparts/d",
		"P", "Dir::Etc::preferences/f", "PP", "Dir::Etc::preferencesparts/d", "A", "APT::Architecture").run(ctx)
	if err != nil {
		return "", fmt.Errorf("read apt configuration: %w", err)
	}
	h := sha256.New()
	h.Write(out)
	for _, line := range strings.Split(string(out), "\n") {
		_, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		p := strings.Trim(v, "'")
		if !strings.HasPrefix(p, "/") {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(h, "%s absent\n", p)
			continue
		}
		if !fi.IsDir() {
			fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return "", fmt.Errorf("read apt state %s: %w", p, err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || info.IsDir() || e.Name() == "lock" {
				continue
			}
			fmt.Fprintf(h, "%s/%s %d %d\n", p, e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
