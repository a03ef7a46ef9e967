package results

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// The synthetic run's specs, as the suite names them.
const (
	describeText = "PXE booting a VirtualMachineInstance over a bridge network"
	passedText   = "follows the documented procedure with bios firmware"
	failedText   = "never answers a VMI whose MAC is not on the allow-list"
	skippedText  = "follows the documented procedure with efi firmware"
	skipReason   = "firmware efi is not selected (firmware: [bios])"
	// failureText carries markup that the page must show as text, never run.
	failureText = `no DHCP answer for de:00:00:00:00:ad: <script>document.title="owned"</script> & "quotes"`
	failedMAC   = "de:00:00:00:00:ad"
)

// syntheticRun writes a run's spec folders under dir as the suite leaves them (a boot screen for
// the passed spec; boot screen, console and PXE events for the failed one) and returns its
// report: one spec passed, one failed, one skipped, and a passed BeforeSuite.
func syntheticRun(t *testing.T, dir string) types.Report {
	t.Helper()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	by := func(s float64, text string) types.SpecEvent {
		return types.SpecEvent{SpecEventType: types.SpecEventByStart, Message: text, TimelineLocation: types.TimelineLocation{Time: at(s)}}
	}
	spec := func(leaf string, labels []string, state types.SpecState, from, to float64) types.SpecReport {
		return types.SpecReport{
			ContainerHierarchyTexts: []string{describeText}, ContainerHierarchyLabels: [][]string{{"pxe"}},
			LeafNodeType: types.NodeTypeIt, LeafNodeText: leaf, LeafNodeLabels: labels, State: state,
			StartTime: at(from), EndTime: at(to), RunTime: at(to).Sub(at(from)),
		}
	}

	passed := spec(passedText, []string{"bios", "certification"}, types.SpecStatePassed, 1, 30)
	passed.SpecEvents = types.SpecEvents{by(1.5, "Create the VirtualMachineInstance"), by(9, "Watch the boot: iPXE opens the bridge interface"), by(14, "View the VM using VNC")}
	passed.ReportEntries = types.ReportEntries{
		{Name: TimingsEntry, Value: types.WrapEntryValue(procedure.Marks{{Step: procedure.StepRunning, Seconds: 9.3}, {Step: procedure.StepIPXE, Seconds: 13.3}})},
		{Name: "boot chain", Value: types.WrapEntryValue("iPXE ROM")},
	}
	failed := spec(failedText, []string{"negative", "bios"}, types.SpecStateFailed, 30, 52)
	failed.SpecEvents = types.SpecEvents{by(31, "iPXE opens the bridge interface and asks for DHCP"), by(40, "The wait for DHCP fails fast")}
	failed.Failure = types.Failure{Message: failureText, Location: types.CodeLocation{FileName: "/src/suites/pxe/pxe_test.go", LineNumber: 171}}
	skipped := spec(skippedText, []string{"efi", "certification"}, types.SpecStateSkipped, 52, 52)
	skipped.Failure = types.Failure{Message: skipReason, Location: types.CodeLocation{FileName: "/src/suites/pxe/pxe_test.go", LineNumber: 79}}
	before := types.SpecReport{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed, StartTime: at(0), EndTime: at(1)}

	report := types.Report{
		SuiteDescription: "PXE conformance", SuiteSucceeded: false,
		StartTime: start, EndTime: at(52), RunTime: at(52).Sub(start),
		SuiteConfig: types.SuiteConfig{LabelFilter: "certification"},
		SpecReports: types.SpecReports{before, passed, failed, skipped},
	}

	writePNG(t, filepath.Join(SpecDir(dir, passed), BootScreenFile))
	fdir := SpecDir(dir, failed)
	writePNG(t, filepath.Join(fdir, BootScreenFile))
	console := "\x1b[2J\x1b[1;1HSeaBIOS (version 1.16.2)\r\niPXE 1.21.1 -- Open Source Network Boot Firmware\r\nnet0: " + failedMAC + " using virtio-net\r\nConfiguring (net0 " + failedMAC + ")...... No configuration methods succeeded\r\n"
	writeFile(t, filepath.Join(fdir, ConsoleFile), []byte(console))
	events := []pxe.Event{
		{Time: at(33), MAC: failedMAC, Kind: pxe.KindDHCPIgnored, Protocol: pxe.ProtoDHCP, Reason: pxe.ReasonNotAllowListed, Detail: "DISCOVER"},
		{Time: at(35), MAC: failedMAC, Kind: pxe.KindDHCPIgnored, Protocol: pxe.ProtoDHCP, Reason: pxe.ReasonNotAllowListed, Detail: "DISCOVER"},
	}
	b, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(fdir, PXEEventsFile), b)
	return report
}

// testConfig is the configuration the synthetic run's environment records.
func testConfig() settings.Config { return settings.Default() }

// writePNG writes a boot screen of a few coloured bars: a real PNG, and not one colour.
func writePNG(t *testing.T, path string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 200))
	bars := []color.RGBA{{0, 0, 170, 255}, {170, 170, 170, 255}, {255, 255, 85, 255}, {0, 170, 0, 255}}
	for y := range 200 {
		for x := range 320 {
			img.Set(x, y, bars[(y/50)%len(bars)])
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
