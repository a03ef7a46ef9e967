package results

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pxe-conformance/pxe-conformance/framework/console"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

//go:embed page.html
var pageHTML string

var page = template.Must(template.New(PageFile).Parse(pageHTML))

// maxConsoleBytes is how much of a console transcript the page shows, from its end: the
// firmware's and the guest's last words are what a reader looks for, and the file in the
// spec's folder keeps the rest.
const maxConsoleBytes = 256 << 10

// maxScreenshotBytes keeps a page that opens quickly: a boot screen is tens of kilobytes.
const maxScreenshotBytes = 8 << 20

type pageData struct {
	Title, Verdict, VerdictClass string
	Counts                       []count
	Reasons                      []string
	Start, Took, LabelFilter     string
	Env                          *Environment
	EnvJSON                      string
	SuiteFailures                []suiteFailure
	Specs                        []specView
}

type count struct {
	N     int
	Label string
}

type suiteFailure struct{ Node, Location, Message string }

type specView struct {
	ID, Name, State, StateClass, Duration, Dir string
	Labels                                     []string
	Failure                                    *failureView
	Steps                                      []stepView
	Entries                                    []entryView
	Screenshot                                 template.URL
	Notes                                      []string
	PXE                                        []macTimeline
	Console, ConsoleCut, Output                string
}

type failureView struct{ Class, Heading, Location, Message string }

type stepView struct{ At, Took, Text string }

type entryView struct{ Name, Value string }

type macTimeline struct {
	MAC    string
	Events []eventView
}

type eventView struct{ At, Kind, Protocol, Detail string }

// renderPage writes index.html for report and env; dir holds the specs' folders.
func renderPage(w io.Writer, report types.Report, env *Environment, dir string) error {
	d := pageData{Title: report.SuiteDescription, Env: env, Reasons: report.SpecialSuiteFailureReasons,
		Start: stamp(report.StartTime), Took: roundDuration(report.RunTime), LabelFilter: report.SuiteConfig.LabelFilter}
	if d.Title == "" {
		d.Title = "PXE conformance"
	}
	envJSON, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	d.EnvJSON = string(envJSON)

	tally := map[string]int{}
	for i, r := range report.SpecReports {
		if r.LeafNodeType != types.NodeTypeIt {
			if r.State.Is(types.SpecStateFailureStates) {
				d.SuiteFailures = append(d.SuiteFailures, suiteFailure{Node: r.LeafNodeType.String(),
					Location: r.FailureLocation().String(), Message: r.FailureMessage()})
			}
			continue
		}
		v := specPart(i, r, dir)
		tally[v.StateClass]++
		d.Specs = append(d.Specs, v)
	}
	for _, c := range []string{"passed", "failed", "skipped", "pending"} {
		if tally[c] > 0 {
			d.Counts = append(d.Counts, count{tally[c], c})
		}
	}
	switch {
	case report.SuiteConfig.DryRun:
		d.Verdict, d.VerdictClass = "DRY RUN: no spec ran", "dryrun"
	case report.SuiteSucceeded:
		d.Verdict, d.VerdictClass = "PASSED", "passed"
	default:
		d.Verdict, d.VerdictClass = "FAILED", "failed"
	}
	return page.Execute(w, d)
}

// specPart is one spec's section: its result, steps, entries and what its folder holds.
func specPart(i int, r types.SpecReport, dir string) specView {
	v := specView{ID: fmt.Sprintf("spec-%d", i+1), Name: r.FullText(), Labels: r.Labels(),
		State: r.State.String(), StateClass: stateClass(r.State), Duration: roundDuration(r.RunTime)}
	switch {
	case r.State.Is(types.SpecStateFailureStates):
		v.Failure = &failureView{Class: "failure", Heading: "Failure", Location: r.FailureLocation().String(), Message: r.FailureMessage()}
		if fp := r.Failure.ForwardedPanic; fp != "" {
			v.Failure.Message += "\n\npanic: " + fp
		}
	case r.State.Is(types.SpecStateSkipped) && r.FailureMessage() != "":
		v.Failure = &failureView{Class: "reason", Heading: "Skipped", Location: r.FailureLocation().String(), Message: r.FailureMessage()}
	}

	starts := r.SpecEvents.WithType(types.SpecEventByStart)
	for j, e := range starts {
		end := r.EndTime
		if j+1 < len(starts) {
			end = starts[j+1].TimelineLocation.Time
		}
		at := e.TimelineLocation.Time
		v.Steps = append(v.Steps, stepView{At: "+" + roundDuration(at.Sub(r.StartTime)), Took: roundDuration(end.Sub(at)), Text: e.Message})
	}
	for _, e := range r.ReportEntries {
		v.Entries = append(v.Entries, entryView{Name: e.Name, Value: e.StringRepresentation()})
	}
	v.Output = r.CapturedGinkgoWriterOutput

	folder := SpecDir(dir, r)
	if _, err := os.Stat(folder); err != nil {
		return v
	}
	v.Dir = specDirName(r)
	note := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			v.Notes = append(v.Notes, err.Error())
		}
	}
	var err error
	v.Screenshot, err = dataURI(filepath.Join(folder, BootScreenFile))
	note(err)
	v.Console, v.ConsoleCut, err = transcript(filepath.Join(folder, ConsoleFile))
	note(err)
	v.PXE, err = pxeTimelines(filepath.Join(folder, PXEEventsFile))
	note(err)
	return v
}

func stateClass(s types.SpecState) string {
	switch {
	case s.Is(types.SpecStatePassed):
		return "passed"
	case s.Is(types.SpecStateSkipped):
		return "skipped"
	case s.Is(types.SpecStatePending):
		return "pending"
	default:
		return "failed"
	}
}

// dataURI inlines the PNG at path, once it decodes as one: only then is it safe in src.
func dataURI(path string) (template.URL, error) {
	b, err := readBounded(path, maxScreenshotBytes)
	if err != nil {
		return "", err
	}
	if _, err := png.DecodeConfig(bytes.NewReader(b)); err != nil {
		return "", fmt.Errorf("boot screen %s: %w", filepath.Base(path), err)
	}
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b)), nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the page shows (%d)", filepath.Base(path), fi.Size(), limit)
	}
	return os.ReadFile(path)
}

// transcript reads a console transcript without terminal control sequences, keeping its last
// maxConsoleBytes; cut says how much was kept when it was cut.
func transcript(path string) (text, cut string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", "", err
	}
	if fi.Size() > maxConsoleBytes {
		if _, err := f.Seek(-maxConsoleBytes, io.SeekEnd); err != nil {
			return "", "", err
		}
		cut = fmt.Sprintf("%d KiB", maxConsoleBytes>>10)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxConsoleBytes))
	if err != nil {
		return "", "", err
	}
	return strings.ToValidUTF8(string(console.Clean(raw)), "\uFFFD"), cut, nil
}

// pxeTimelines reads the PXE server's events, one timeline per MAC in order of first event,
// each event's time relative to the log's first.
func pxeTimelines(path string) ([]macTimeline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var events []pxe.Event
	if err := json.Unmarshal(b, &events); err != nil {
		return nil, fmt.Errorf("PXE server events %s: %w", filepath.Base(path), err)
	}
	if len(events) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(events, func(a, b pxe.Event) int { return a.Time.Compare(b.Time) })
	zero := events[0].Time
	var out []macTimeline
	for _, e := range events {
		mac := e.MAC
		if mac == "" {
			mac = "unknown (no reservation holds the address)"
		}
		i := slices.IndexFunc(out, func(t macTimeline) bool { return t.MAC == mac })
		if i < 0 {
			out = append(out, macTimeline{MAC: mac})
			i = len(out) - 1
		}
		out[i].Events = append(out[i].Events, eventView{At: "+" + roundDuration(e.Time.Sub(zero)),
			Kind: string(e.Kind), Protocol: e.Protocol, Detail: eventDetail(e)})
	}
	return out, nil
}

// eventDetail is an event's fields that are set, as key=value.
func eventDetail(e pxe.Event) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("ip", e.IP)
	add("path", e.Path)
	if e.Status != 0 {
		add("status", fmt.Sprint(e.Status))
	}
	if e.Bytes != 0 {
		add("bytes", fmt.Sprint(e.Bytes))
	}
	if e.Duration != 0 {
		add("took", roundDuration(e.Duration))
	}
	add("firmware", e.Firmware)
	add("userClass", e.UserClass)
	add("nonce", e.Nonce)
	add("remote", e.Remote)
	add("reason", e.Reason)
	add("detail", e.Detail)
	return strings.Join(parts, " ")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "not recorded"
	}
	return t.UTC().Format(time.RFC3339)
}

// roundDuration prints d to a tenth of a second, or to the millisecond below one second.
func roundDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
