package build

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// AptSourceFiles are where DebianMirror looks for the host's Debian sources, deb822 and
// one-line, in this order: Debian's own file first, so that a vendor's repository in another
// file is never taken for the archive.
var AptSourceFiles = []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list", "/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list"}

// DebianMirror returns the Debian archive the host's apt uses (its first URI that is not a
// security archive), for debootstrap: the images come from the archive the host already
// reaches, and no archive is named in this repository. With none configured it fails, naming
// the files it read.
func DebianMirror() (string, error) {
	var all strings.Builder
	var read []string
	for _, pattern := range AptSourceFiles {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if slices.Contains(read, p) {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			read = append(read, p)
			all.Write(data)
			all.WriteString("\n")
		}
	}
	if uri, ok := ParseDebianMirror(all.String()); ok {
		return uri, nil
	}
	return "", fmt.Errorf("no Debian archive in the host's apt sources (read: %s; looked in %s): "+
		"add the archive this machine uses (a URIs: line in a .sources file, or a deb line), "+
		"as `apt-get update` needs anyway; the images are built from it",
		orNone(read), strings.Join(AptSourceFiles, ", "))
}

// ParseDebianMirror returns the first archive URI of apt sources (deb822 URIs: lines and
// one-line deb entries) that is not a security archive, without its trailing slash.
func ParseDebianMirror(sources string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(sources))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var uris []string
		switch {
		case strings.HasPrefix(line, "URIs:"):
			uris = strings.Fields(strings.TrimPrefix(line, "URIs:"))
		case strings.HasPrefix(line, "deb "):
			for _, f := range strings.Fields(line)[1:] {
				if strings.Contains(f, "://") {
					uris = append(uris, f)
					break
				}
			}
		}
		for _, uri := range uris {
			if !strings.Contains(uri, "security") {
				return strings.TrimSuffix(uri, "/"), true
			}
		}
	}
	return "", false
}

func orNone(files []string) string {
	if len(files) == 0 {
		return "none"
	}
	return strings.Join(files, ", ")
}
