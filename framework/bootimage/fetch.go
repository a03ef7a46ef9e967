package bootimage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Fetch pins each named package to the amd64 candidate apt offers now and puts its .deb,
// checked against the SHA-256 of the archive's index, into dir (a file already there with that
// hash is reused). It returns the pinned packages and the .deb paths, by name. As Build does,
// it runs `apt-get update` once when apt does not know a package, and tries again.
//
// The image builder takes the PXE server image's iPXE and busybox from here, so the image and
// the guest payload pin the same way and, with the same package lists, carry the same builds.
func Fetch(ctx context.Context, dir string, logf func(format string, args ...any), names ...string) (map[string]Package, map[string]string, error) {
	a := apt{logf: logf}
	pkgs, paths, err := fetch(ctx, a, dir, names)
	if errors.Is(err, errAptUnknown) {
		if logf != nil {
			logf("bootimage: %v; running apt-get update once and retrying", err)
		}
		if err := a.update(ctx); err != nil {
			return nil, nil, fmt.Errorf("fetch %s: %w", strings.Join(names, " "), err)
		}
		pkgs, paths, err = fetch(ctx, a, dir, names)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", strings.Join(names, " "), err)
	}
	return pkgs, paths, nil
}

func fetch(ctx context.Context, a apt, dir string, names []string) (map[string]Package, map[string]string, error) {
	recs, err := a.show(ctx, names...)
	if err != nil {
		return nil, nil, err
	}
	pkgs := map[string]Package{}
	var list []Package
	for _, n := range names {
		p := recs[n].pkg()
		if p.SHA256 == "" {
			return nil, nil, fmt.Errorf("package %s=%s: the archive's index gives no SHA256 to check it by", p.Name, p.Version)
		}
		pkgs[n] = p
		list = append(list, p)
	}
	paths, err := a.download(ctx, filepath.Clean(dir), list)
	if err != nil {
		return nil, nil, err
	}
	return pkgs, paths, nil
}

// Pin says which build of a package this is: name, version, architecture and SHA-256, one
// string to hash into a cache key.
func (p Package) Pin() string {
	return p.Name + "=" + p.Version + "/" + p.Architecture + " sha256:" + p.SHA256
}
