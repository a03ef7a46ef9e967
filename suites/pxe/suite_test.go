//go:build e2e

package pxe

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/framework/e2e"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/suites/config"
)

var (
	flags = config.RegisterFlags(flag.CommandLine)
	// cfg is the run's configuration as loaded; env is set up by BeforeSuite.
	cfg     settings.Config
	loadErr error
	env     *e2e.Env
)

func TestPXE(t *testing.T) {
	RegisterFailHandler(Fail)
	cfg, loadErr = flags.Load(os.LookupEnv)
	RunSpecs(t, "PXE conformance")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	Expect(loadErr).NotTo(HaveOccurred(), "configuration")
	var err error
	env, err = e2e.Setup(ctx, cfg, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	suite, _ := GinkgoConfiguration()
	Expect(env.SetLane(GinkgoParallelProcess(), suite.ParallelTotal)).To(Succeed())
	By(fmt.Sprintf("cluster %s: nodes %v, KubeVirt %s, emulation %v, bridge %q", cfg.Kubeconfig, env.Nodes, env.KubeVirtVersion, env.Emulation, env.Config.Bridge))
}, NodeTimeout(setupBound))

// After every spec has cleaned up: Setup's own namespace goes, and then nothing the suite
// created may be left. (A DeferCleanup in BeforeSuite would run after this check.)
var _ = AfterSuite(func(ctx SpecContext) {
	if env == nil {
		return
	}
	Expect(env.Finish(ctx, !env.Config.KeepOnFailure)).To(Succeed())
}, NodeTimeout(2*cfg.Timeouts.Cleanup))

// Reports on every run, also a dry run: JUnit, Ginkgo's JSON, and the specs' step timings.
var _ = ReportAfterSuite("reports", func(report Report) {
	dir := cfg.ArtifactsDir
	if dir == "" {
		dir = "_artifacts"
	}
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	Expect(reporters.GenerateJUnitReport(report, filepath.Join(dir, "junit.xml"))).To(Succeed())
	Expect(reporters.GenerateJSONReport(report, filepath.Join(dir, "report.json"))).To(Succeed())
	// Raw values are e2e.Marks in this process and decoded JSON from parallel processes; both
	// marshal the same way.
	timings := map[string]any{}
	for _, s := range report.SpecReports {
		for _, e := range s.ReportEntries {
			if e.Name == timingsEntry {
				timings[s.FullText()] = e.Value.GetRawValue()
			}
		}
	}
	b, err := json.MarshalIndent(timings, "", "  ")
	Expect(err).NotTo(HaveOccurred())
	Expect(os.WriteFile(filepath.Join(dir, "timings.json"), b, 0o644)).To(Succeed())
})

// setupBound bounds BeforeSuite: preflight's node probes and, on a first run, the guest
// payload's download and build.
const setupBound = 30 * time.Minute

// specTimeout bounds a spec by the sum of its steps' bounds (settings.Timeouts.Spec), scaled
// for emulation: the spec tree is built before preflight knows whether KubeVirt emulates, so
// the bound assumes it does.
func specTimeout() SpecTimeout {
	c := cfg
	if loadErr != nil {
		c = settings.Default()
	}
	return SpecTimeout(c.ForEmulation().Timeouts.Spec())
}

// timingsEntry names the report entry that carries a spec's step timings.
const timingsEntry = "step timings"

// newSpec creates the spec's namespace and registers its cleanup: artifacts when the spec
// failed, then the namespace's deletion (unless keepOnFailure keeps a failed spec's).
func newSpec(ctx context.Context) *e2e.Spec {
	GinkgoHelper()
	text := CurrentSpecReport().FullText()
	s, err := env.NewSpec(ctx, text)
	Expect(err).NotTo(HaveOccurred())
	By("namespace " + s.Namespace)
	DeferCleanup(func(ctx SpecContext) {
		r := CurrentSpecReport()
		AddReportEntry(timingsEntry, s.Timings.Marks())
		if r.Failed() {
			dir := artifactDir(r)
			if err := s.CollectArtifacts(ctx, dir); err != nil {
				GinkgoWriter.Printf("some artifacts missing from %s: %v\n", dir, err)
			}
			GinkgoWriter.Printf("artifacts of the failed spec: %s\n", dir)
			if env.Config.KeepOnFailure {
				GinkgoWriter.Printf("keepOnFailure: namespace %s left in place\n", s.Namespace)
				return
			}
		}
		Expect(s.Delete(ctx)).To(Succeed())
	}, NodeTimeout(2*env.Config.Timeouts.Cleanup))
	return s
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// artifactDir is $ARTIFACTS/<spec>/ for a spec, its text made safe for a path.
func artifactDir(r types.SpecReport) string {
	name := strings.Trim(unsafeChars.ReplaceAllString(r.FullText(), "-"), "-")
	if len(name) > 120 {
		name = name[:120]
	}
	return filepath.Join(env.Config.ArtifactsDir, name)
}
