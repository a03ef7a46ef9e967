// Command benche2e measures the conformance suite on the running lab cluster (`make
// bench-e2e`): it runs the suite --runs times, each into an artifacts folder of its own, reads
// the reports the suite writes (report.json, timings.json) and ends with one line of medians:
//
//	suite=<s> specs=<n> bios_assertions=<s> efi_assertions=<s> running=<s>
//
// suite is the suite's run time, specs the specs that passed in every run, bios_assertions and
// efi_assertions the seconds from VMI creation to all of the documented procedure's assertions,
// running the seconds from creation to Running over every spec's VMI. A benchmark, not a test:
// it fails only when the suite does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/pxe-conformance/pxe-conformance/framework/results"
)

func main() {
	home, _ := os.UserHomeDir()
	runs := flag.Int("runs", 3, "how many times to run the suite")
	kubeconfig := flag.String("kubeconfig", filepath.Join(home, ".cache", "pxe-conformance", "kind-pxec.kubeconfig"), "the lab cluster's kubeconfig (make cluster writes it)")
	out := flag.String("artifacts", "_artifacts/bench-e2e", "where each run's reports go (run-1, run-2, ...)")
	ginkgoArgs := flag.String("ginkgo-args", "", "extra ginkgo flags, e.g. --procs=2")
	flag.Parse()
	if *runs < 1 {
		fail("--runs %d: want at least 1", *runs)
	}
	if _, err := os.Stat(*kubeconfig); err != nil {
		fail("--kubeconfig %q: %v (run make cluster first)", *kubeconfig, err)
	}
	var suite, bios, efi, running []float64
	passedEvery := map[string]int{}
	for i := 1; i <= *runs; i++ {
		dir, err := filepath.Abs(filepath.Join(*out, fmt.Sprintf("run-%d", i)))
		if err != nil {
			fail("%v", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fail("%v", err)
		}
		args := append([]string{"run", "github.com/onsi/ginkgo/v2/ginkgo", "--tags", "e2e"}, strings.Fields(*ginkgoArgs)...)
		args = append(args, "./suites/pxe")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "PXEC_KUBECONFIG="+*kubeconfig, "ARTIFACTS="+dir)
		log, err := os.Create(filepath.Join(dir, "suite.log"))
		if err != nil {
			fail("%v", err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		fmt.Fprintf(os.Stderr, "bench-e2e: run %d of %d (log %s)\n", i, *runs, log.Name())
		start := time.Now()
		err = cmd.Run()
		log.Close()
		if err != nil {
			fail("run %d: the suite failed (%v): see %s", i, err, log.Name())
		}
		r, err := results.ReadReport(dir)
		if err != nil {
			fail("run %d: %v", i, err)
		}
		suite = append(suite, r.RunTime.Seconds())
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt && s.State == types.SpecStatePassed {
				passedEvery[s.FullText()]++
			}
		}
		t, err := readTimings(dir)
		if err != nil {
			fail("run %d: %v", i, err)
		}
		for spec, marks := range t {
			if v, ok := marks["running"]; ok {
				running = append(running, v)
			}
			if v, ok := marks["assertions"]; ok {
				switch {
				case strings.Contains(spec, "with bios firmware"):
					bios = append(bios, v)
				case strings.Contains(spec, "with efi firmware"):
					efi = append(efi, v)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "bench-e2e: run %d: suite %.1fs (%s wall)\n", i, r.RunTime.Seconds(), time.Since(start).Round(time.Second))
	}
	specs := 0
	for _, n := range passedEvery {
		if n == *runs {
			specs++
		}
	}
	fmt.Printf("suite=%s specs=%d bios_assertions=%s efi_assertions=%s running=%s\n",
		median(suite), specs, median(bios), median(efi), median(running))
}

// readTimings reads timings.json: per spec, the seconds of each milestone.
func readTimings(dir string) (map[string]map[string]float64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "timings.json"))
	if err != nil {
		return nil, err
	}
	var raw map[string][]struct {
		Step    string  `json:"step"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("timings.json: %w", err)
	}
	out := map[string]map[string]float64{}
	for spec, marks := range raw {
		out[spec] = map[string]float64{}
		for _, m := range marks {
			out[spec][m.Step] = m.Seconds
		}
	}
	return out, nil
}

// median prints the median of v with one decimal, or "none".
func median(v []float64) string {
	if len(v) == 0 {
		return "none"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.1f", m)
}

func fail(format string, a ...any) {
	fmt.Fprintln(os.Stderr, "bench-e2e:", fmt.Sprintf(format, a...))
	os.Exit(1)
}
