package results

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
)

// browserBound bounds one headless Chromium run: it renders the page in about a second here,
// and a wedged browser must end the test rather than hang it.
const browserBound = 2 * time.Minute

// The rendering's window, tall enough to hold the passed spec's boot screen.
const windowWidth, windowHeight = 1280, 3000

// chromium runs headless Chromium on page with args, in a profile of its own and with
// everything that could reach the network switched off, and returns its standard output.
func chromium(t *testing.T, page string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		prereq.Missing(t, "chromium not found (make test installs Debian's chromium): "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserBound)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", windowWidth, windowHeight)}, args...)
	argv = append(argv, "file://"+page)
	cmd := exec.CommandContext(ctx, bin, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(argv, " "), err, stderr.String())
	}
	return out
}

// extract unpacks a bundle into a new directory and returns the path of its index.html.
func extract(t *testing.T, bundle string) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range unpack(t, bundle) {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), b)
	}
	return filepath.Join(dir, PageFile)
}

// reachedEnvironment is an environment as read from a cluster, with one item unreadable.
func reachedEnvironment() *Environment {
	env := NotRead(testConfig(), "")
	env.Cluster = ClusterInfo{Reached: true, KubernetesVersion: "v1.34.3",
		Nodes: []NodeInfo{{Name: "pxec-control-plane", Ready: true, Schedulable: true, OSImage: "Debian GNU/Linux 12 (bookworm)",
			KernelVersion: "6.1.0-40-amd64", ContainerRuntime: "containerd://2.1.4", Bridges: []string{"br1", "br2"},
			CNIPluginsError: "not visible to the node probe: its host-network pod does not mount the node's /opt/cni/bin"}},
		KubeVirt: []KubeVirtInfo{{Namespace: "kubevirt", Name: "kubevirt", Version: "v1.9.0", Phase: "Deployed", Available: true,
			UseEmulation: true, FeatureGates: []string{"ExpandDisks"}}},
		MultusError: "list DaemonSets: forbidden",
	}
	return env
}

func TestPageRendersInHeadlessChromium(t *testing.T) {
	bundle, report := writeTestBundle(t, reachedEnvironment())
	page := extract(t, bundle)

	t.Run("screenshot", func(t *testing.T) {
		shot := filepath.Join(t.TempDir(), "page.png")
		chromium(t, page, "--hide-scrollbars", "--screenshot="+shot)
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("chromium left no screenshot: %v", err)
		}
		defer f.Close()
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if b := img.Bounds(); b.Dx() != windowWidth || b.Dy() != windowHeight {
			t.Errorf("screenshot is %dx%d, want the window's %dx%d", b.Dx(), b.Dy(), windowWidth, windowHeight)
		}
		colours := map[color.RGBA]bool{}
		for p := range pixels(img) {
			colours[p] = true
		}
		if len(colours) < 16 {
			t.Errorf("screenshot has %d colours: a page with text, badges and images has many more", len(colours))
		}
		// The boot screens' yellow bar is a colour the page's own styles never use: seeing it
		// means the inline data: image was decoded and drawn.
		yellow := color.RGBA{255, 255, 85, 255}
		seen := 0
		for p := range pixels(img) {
			if near(p, yellow) {
				seen++
			}
		}
		if want := 320 * 50; seen < want {
			t.Errorf("screenshot shows %d pixels of the boot screen's yellow bar, want at least %d (one whole bar)", seen, want)
		}
	})

	t.Run("DOM", func(t *testing.T) {
		dom := chromium(t, page, "--dump-dom")
		doc, err := html.Parse(bytes.NewReader(dom))
		if err != nil {
			t.Fatalf("dumped DOM: %v", err)
		}
		byID := map[string]*html.Node{}
		var headings, titles []string
		var screens []string
		for n := range doc.Descendants() {
			if n.Type != html.ElementNode {
				continue
			}
			if id := attr(n, "id"); id != "" {
				byID[id] = n
			}
			switch n.Data {
			case "h3":
				headings = append(headings, text(n))
			case "title":
				titles = append(titles, text(n))
			case "img":
				if strings.HasPrefix(attr(n, "src"), "data:image/png;base64,") {
					screens = append(screens, attr(n, "alt"))
				}
			case "script":
				t.Errorf("the DOM holds a <script> (%q): the failure message's markup was not escaped", text(n))
			}
		}
		if v := byID["verdict"]; v == nil || text(v) != "FAILED" {
			t.Errorf("verdict element %v, want one with id verdict saying FAILED", v)
		}
		if len(titles) != 1 || titles[0] != "PXE conformance: FAILED" {
			t.Errorf("page titles %q, want the suite and its verdict", titles)
		}
		var want []string
		for _, r := range report.SpecReports[1:] {
			want = append(want, r.FullText())
		}
		if strings.Join(headings, "\n") != strings.Join(want, "\n") {
			t.Errorf("spec sections %q, want %q", headings, want)
		}
		if len(screens) != 2 || !strings.Contains(screens[0], passedText) || !strings.Contains(screens[1], failedText) {
			t.Errorf("inline boot screens for %q, want the passed and the failed spec's", screens)
		}
		body := text(doc)
		for _, s := range []string{failureText, skipReason, "v1.34.3", "v1.9.0", "useEmulation true", "list DaemonSets: forbidden",
			"Create the VirtualMachineInstance", "dhcp-ignored", "iPXE 1.21.1 -- Open Source Network Boot Firmware"} {
			if !strings.Contains(body, s) {
				t.Errorf("page text lacks %q", s)
			}
		}
		if strings.Contains(body, "\x1b") {
			t.Error("the console transcript keeps terminal escapes")
		}
	})
}

// pixels yields every pixel of img as RGBA.
func pixels(img image.Image) func(func(color.RGBA) bool) {
	return func(yield func(color.RGBA) bool) {
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if !yield(color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)) {
					return
				}
			}
		}
	}
}

// near allows for a colour's rounding in the browser's image pipeline.
func near(a, b color.RGBA) bool {
	d := func(x, y uint8) int { return max(int(x), int(y)) - min(int(x), int(y)) }
	return d(a.R, b.R) <= 3 && d(a.G, b.G) <= 3 && d(a.B, b.B) <= 3
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// text is the text below n, as a reader sees it.
func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}
