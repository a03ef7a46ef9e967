//go:build e2e

package pxe

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"

	"github.com/pxe-conformance/pxe-conformance/framework/e2e"
	"github.com/pxe-conformance/pxe-conformance/framework/results"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
	"github.com/pxe-conformance/pxe-conformance/suites/config"
)

var (
	flags = config.RegisterFlags(flag.CommandLine)
	// cfg is the run's configuration as loaded; env is set up by BeforeSuite.
	cfg     settings.Config
	loadErr error
	env     *e2e.Env
	// environment is what the run ran on, read once by BeforeSuite (on the first parallel
	// process, which writes the bundle); setupErr says why it was not, when BeforeSuite failed.
	environment *results.Environment
	setupErr    error
)

func TestPXE(t *testing.T) {
	RegisterFailHandler(Fail)
	cfg, loadErr = flags.Load(os.LookupEnv)
	RunSpecs(t, "PXE conformance")
}

// Every process sets up (e2e.Setup, preflight first) and the first records the environment.
// When bridge.create is nncp, the first process sets up alone before the others and makes the
// run's bridge by policy, so that no process's specs start without it.
var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	if cfg.BridgeCreate == settings.BridgeByNNCP {
		setUp(ctx)
		By(fmt.Sprintf("Configure the PXE network: bridge %q on every node by NodeNetworkConfigurationPolicy (bridge.create: %s)", env.Config.Bridge, settings.BridgeByNNCP))
		Expect(env.CreateBridge(ctx)).To(Succeed())
	}
	return nil
}, func(ctx SpecContext, _ []byte) {
	if env == nil {
		setUp(ctx)
	}
	if GinkgoParallelProcess() == 1 {
		By("Record the environment for the results bundle")
		var err error
		environment, err = results.CollectEnvironment(ctx, results.Cluster{
			Kube: env.Kube, KubeVirt: env.Virt.GeneratedKubeVirtClient().KubevirtV1(), Node: env.Node}, env.Config)
		if err != nil {
			GinkgoWriter.Printf("environment.json says what could not be read: %v\n", err)
		}
	}
}, NodeTimeout(setupBound))

// setUp runs e2e.Setup for this process and takes its lane of the PXE network.
func setUp(ctx context.Context) {
	GinkgoHelper()
	setupErr = loadErr
	Expect(loadErr).NotTo(HaveOccurred(), "configuration")
	var err error
	env, err = e2e.Setup(ctx, cfg, GinkgoWriter)
	setupErr = err
	Expect(err).NotTo(HaveOccurred())
	suite, _ := GinkgoConfiguration()
	Expect(env.SetLane(GinkgoParallelProcess(), suite.ParallelTotal)).To(Succeed())
	By(fmt.Sprintf("cluster %s: nodes %v, KubeVirt %s, emulation %v, bridge %q", env.Cluster, env.Nodes, env.KubeVirtVersion, env.Emulation, env.Config.Bridge))
}

// After every spec has cleaned up: the spec namespaces whose deletion the specs started are
// waited for, Setup's own namespace goes, and then nothing this process created may be left.
// (A DeferCleanup in BeforeSuite would run after this check.) The first process finishes
// last, once every other process has: it removes the run's bridge, if it made one.
var _ = SynchronizedAfterSuite(func(ctx SpecContext) {
	if GinkgoParallelProcess() != 1 {
		finish(ctx)
	}
}, func(ctx SpecContext) {
	finish(ctx)
}, NodeTimeout(finishBound))

func finish(ctx context.Context) {
	GinkgoHelper()
	if env == nil {
		return
	}
	Expect(env.Finish(ctx, !env.Config.KeepOnFailure)).To(Succeed())
}

// Reports on every run, also a dry run: JUnit, Ginkgo's JSON, the specs' step timings, the
// environment and the page, packed with the spec folders into the results bundle. It takes no
// SpecContext: an interrupted run still gets its whole bundle.
var _ = ReportAfterSuite("reports and results bundle", func(report Report) {
	dir := cfg.ArtifactsDir
	if dir == "" {
		dir = "_artifacts"
	}
	ran := environment
	if ran == nil {
		why := "not read: BeforeSuite did not run"
		switch {
		case report.SuiteConfig.DryRun:
			why = "no cluster was reached: a dry run reads none"
		case setupErr != nil:
			why = "not read: the suite's setup failed: " + setupErr.Error()
		}
		ran = results.NotRead(cfg, why)
	}
	bundle, err := results.WriteBundle(context.Background(), dir, report, ran)
	if bundle != "" {
		GinkgoWriter.Printf("results bundle: %s\n", bundle)
	}
	Expect(err).NotTo(HaveOccurred())
})

// setupBound bounds BeforeSuite: preflight's node probes and, on a first run, the guest
// payload's download and build. finishBound bounds AfterSuite, whose waits each have their own
// bound (timeouts.cleanup) already: it only catches a hang. Both are constants because Ginkgo
// reads decorators when the package loads, before the settings are.
const (
	setupBound  = 30 * time.Minute
	finishBound = 30 * time.Minute
)

// specTimeout bounds a spec by the sum of its steps' bounds (settings.Timeouts.Spec), scaled
// for emulation.
func specTimeout() SpecTimeout {
	return SpecTimeout(specTimeouts().Spec())
}

// specTimeouts are the run's timeouts as decorators need them: the spec tree is built before
// preflight knows whether KubeVirt emulates, so they assume it does.
func specTimeouts() settings.Timeouts {
	c := cfg
	if loadErr != nil {
		c = settings.Default()
	}
	return c.ForEmulation().Timeouts
}

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
		AddReportEntry(results.TimingsEntry, s.Timings.Marks())
		if r.Failed() {
			dir := artifactDir(r)
			GinkgoWriter.Printf("collecting the failed spec's artifacts into %s\n", dir)
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

// artifactDir is $ARTIFACTS/<spec>/ for a spec, as the results bundle finds it.
func artifactDir(r types.SpecReport) string {
	return results.SpecDir(env.Config.ArtifactsDir, r)
}
