package results

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"
	"golang.org/x/net/html"
)

var bundleName = regexp.MustCompile(`^pxe-conformance-\d{8}-\d{6}\.tar\.gz$`)

// writeTestBundle writes the synthetic run's bundle into a new directory, beside leftovers of an
// earlier run that must stay out of it, and returns the bundle's path and the run's report.
func writeTestBundle(t *testing.T, env *Environment) (string, types.Report) {
	t.Helper()
	dir := t.TempDir()
	report := syntheticRun(t, dir)
	writeFile(t, filepath.Join(dir, "an-earlier-run-s-spec", ConsoleFile), []byte("old"))
	writeFile(t, filepath.Join(dir, "pxe-conformance-20250101-000000.tar.gz"), []byte("old bundle"))
	path, err := WriteBundle(context.Background(), dir, report, env)
	if err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	if filepath.Dir(path) != dir || !bundleName.MatchString(filepath.Base(path)) {
		t.Fatalf("bundle %s: want %s/pxe-conformance-<YYYYMMDD-HHMMSS>.tar.gz", path, dir)
	}
	return path, report
}

// unpack reads a bundle into memory: file contents by path below the bundle's one directory,
// which must be named like the bundle.
func unpack(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("bundle is not gzip: %v", err)
	}
	top := strings.TrimSuffix(filepath.Base(path), ".tar.gz") + "/"
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("bundle is not a tar: %v", err)
		}
		name, ok := strings.CutPrefix(h.Name, top)
		if !ok || name == "" || strings.Contains(name, "..") {
			t.Fatalf("bundle entry %q is not below %s", h.Name, top)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

func TestBundleHoldsEveryFileAndEachParses(t *testing.T) {
	env := NotRead(testConfig(), "no cluster was reached: a dry run reads none")
	path, report := writeTestBundle(t, env)
	files := unpack(t, path)

	passedDir, failedDir := specDirName(report.SpecReports[1]), specDirName(report.SpecReports[2])
	want := []string{JUnitFile, ReportFile, TimingsFile, EnvironmentFile, PageFile,
		passedDir + "/" + BootScreenFile,
		failedDir + "/" + BootScreenFile, failedDir + "/" + ConsoleFile, failedDir + "/" + PXEEventsFile}
	var got []string
	for name := range files {
		got = append(got, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("bundle holds\n%q\nwant\n%q", got, want)
	}

	var junit reporters.JUnitTestSuites
	if err := xml.Unmarshal(files[JUnitFile], &junit); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	if len(junit.TestSuites) != 1 || junit.Failures != 1 || junit.TestSuites[0].Skipped != 1 {
		t.Fatalf("junit.xml = %s, want one suite with one failure and one skipped spec", files[JUnitFile])
	}
	var cases []string
	for _, c := range junit.TestSuites[0].TestCases {
		cases = append(cases, c.Name)
	}
	for _, text := range []string{passedText, failedText, skippedText} {
		if !slices.ContainsFunc(cases, func(c string) bool { return strings.Contains(c, text) }) {
			t.Errorf("junit.xml has no test case for %q: %q", text, cases)
		}
	}

	var reports []types.Report
	if err := json.Unmarshal(files[ReportFile], &reports); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(reports) != 1 || len(reports[0].SpecReports) != len(report.SpecReports) {
		t.Fatalf("report.json holds %d reports, want 1 with %d spec reports", len(reports), len(report.SpecReports))
	}
	if msg := reports[0].SpecReports[2].Failure.Message; msg != failureText {
		t.Errorf("report.json's failure message %q, want %q", msg, failureText)
	}

	var timings map[string][]struct {
		Step    string  `json:"step"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(files[TimingsFile], &timings); err != nil {
		t.Fatalf("timings.json: %v", err)
	}
	marks := timings[describeText+" "+passedText]
	if len(timings) != 1 || len(marks) != 2 || marks[1].Step != "ipxe" || marks[1].Seconds != 13.3 {
		t.Errorf("timings.json = %s, want the passed spec's two marks", files[TimingsFile])
	}

	var gotEnv Environment
	if err := json.Unmarshal(files[EnvironmentFile], &gotEnv); err != nil {
		t.Fatalf("environment.json: %v", err)
	}
	if gotEnv.Cluster.Reached || !strings.Contains(gotEnv.Cluster.Error, "dry run") || gotEnv.Config.MAC != testConfig().MAC || gotEnv.Suite.Commit == "" {
		t.Errorf("environment.json = %s, want an unreached cluster saying why, the config and the suite's build", files[EnvironmentFile])
	}

	for _, name := range []string{passedDir + "/" + BootScreenFile, failedDir + "/" + BootScreenFile} {
		if _, err := png.Decode(bytes.NewReader(files[name])); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	doc, err := html.Parse(bytes.NewReader(files[PageFile]))
	if err != nil {
		t.Fatalf("index.html: %v", err)
	}
	var imgs int
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		for _, a := range n.Attr {
			if (a.Key == "src" || a.Key == "href") && !strings.HasPrefix(a.Val, "data:") && !strings.HasPrefix(a.Val, "#") {
				t.Errorf("index.html: <%s %s=%q> reaches outside the page", n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "img" {
			imgs++
		}
		if n.Data == "link" || (n.Data == "script") {
			t.Errorf("index.html has a <%s> element: the page must be one file with no script", n.Data)
		}
	}
	if imgs != 2 {
		t.Errorf("index.html shows %d images, want the two boot screens", imgs)
	}
}

func TestBundleGoesOnWithoutEnvironment(t *testing.T) {
	path, _ := writeTestBundle(t, nil)
	var env Environment
	if err := json.Unmarshal(unpack(t, path)[EnvironmentFile], &env); err != nil {
		t.Fatal(err)
	}
	if env.Cluster.Reached || env.Cluster.Error == "" {
		t.Errorf("environment without a collected one: %+v, want the cluster not read and why", env.Cluster)
	}
}
