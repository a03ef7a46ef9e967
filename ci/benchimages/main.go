// Command benchimages measures the offline image build from nothing (`make bench-images`): it
// runs the image builder (ci/imagebuilder --force, every default target) with an empty builder
// cache, an empty Go build cache and, unless told otherwise, an empty Go module cache, all in a
// folder of its own that it removes at the end, and ends with one line:
//
//	images=<s> kubernetes=<s> kubevirt=<s> coredns=<s> other=<s>
//
// images is the build's wall time; kubernetes, kubevirt and coredns are their compiling steps
// (the builder runs compiling steps one at a time, so these never overlap); other is the rest of
// the wall time (the other compiles, downloads, debootstrap and image assembly, where they do not
// overlap the three). Every step's time is in timings.json and steps.txt under --artifacts. A
// benchmark, not a test: it fails only when the build does. Run it on a quiet machine; the
// images it builds replace the pxec.local ones of the same inputs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

func main() {
	out := flag.String("artifacts", "_artifacts/bench-images", "where timings.json, steps.txt and the builder's log go")
	modules := flag.String("module-cache", "empty", "the Go module cache the build uses: empty (a fresh machine's) or host (this machine's, downloads not timed)")
	work := flag.String("work", "", "the folder for the empty caches (default: a new one under the system's temporary folder), removed at the end")
	flag.Parse()
	if *modules != "empty" && *modules != "host" {
		fmt.Fprintf(os.Stderr, "bench-images: --module-cache %q: want empty or host\n", *modules)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *out, *modules, *work, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-images: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, artifacts, modules, work string, stdout io.Writer) error {
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		return err
	}
	artifacts, err := filepath.Abs(artifacts)
	if err != nil {
		return err
	}
	if work == "" {
		if work, err = os.MkdirTemp("", "pxec-bench-images-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer removeWork(work, modules == "empty", stdout)

	// The builder itself is compiled with this machine's caches, outside the timed build.
	builder := filepath.Join(work, "imagebuilder")
	if err := build.Run(ctx, os.Stderr, exec.CommandContext(ctx, "go", "build", "-o", builder, "./ci/imagebuilder")); err != nil {
		return fmt.Errorf("build the image builder: %w", err)
	}
	env := append(os.Environ(), "GOCACHE="+filepath.Join(work, "gocache"), "PXEC_CACHE="+filepath.Join(work, "cache"))
	if modules == "empty" {
		env = append(env, "GOMODCACHE="+filepath.Join(work, "gomodcache"))
	}
	timings := filepath.Join(artifacts, "timings.json")
	cmd := exec.CommandContext(ctx, builder, "--force", "--cache", filepath.Join(work, "cache"), "--timings", timings)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	// Ctrl-C reaches the builder as SIGINT, so it stops its own commands and cleans up.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	fmt.Fprintf(stdout, "bench-images: building every image from empty caches in %s (Go module cache: %s)\n", work, modules)
	runErr := cmd.Run()
	copyLogs(filepath.Join(work, "cache", "logs"), artifacts)
	if runErr != nil {
		return fmt.Errorf("the image build failed (log in %s): %w", artifacts, runErr)
	}
	var r report
	data, err := os.ReadFile(timings)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("read %s: %w", timings, err)
	}
	s := summarize(r)
	if err := os.WriteFile(filepath.Join(artifacts, "steps.txt"), []byte(stepTable(r)), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, stepTable(r))
	fmt.Fprintln(stdout, s)
	return nil
}

// report is what the builder's --timings writes.
type report struct {
	Start time.Time        `json:"start"`
	End   time.Time        `json:"end"`
	Steps []build.StepTime `json:"steps"`
}

// summary is the benchmark's line, in seconds.
type summary struct {
	images, kubernetes, kubevirt, coredns, other float64
}

func (s summary) String() string {
	return fmt.Sprintf("images=%.0f kubernetes=%.0f kubevirt=%.0f coredns=%.0f other=%.0f",
		s.images, s.kubernetes, s.kubevirt, s.coredns, s.other)
}

// category names the summary field a step's time counts for, "" for other: the compiling
// steps of Kubernetes, CoreDNS and KubeVirt (the stock build and the adapted virt-handler), not
// their module downloads (": modules").
func category(step string) string {
	if strings.HasSuffix(step, ": modules") {
		return ""
	}
	switch {
	case strings.HasPrefix(step, "build kubernetes-"):
		return "kubernetes"
	case strings.HasPrefix(step, "build coredns-"):
		return "coredns"
	case strings.HasPrefix(step, "kubevirt binaries"), strings.HasPrefix(step, "virt-handler with "):
		return "kubevirt"
	}
	return ""
}

func summarize(r report) summary {
	s := summary{images: r.End.Sub(r.Start).Seconds()}
	for _, st := range r.Steps {
		switch category(st.Name) {
		case "kubernetes":
			s.kubernetes += st.Elapsed.Seconds()
		case "coredns":
			s.coredns += st.Elapsed.Seconds()
		case "kubevirt":
			s.kubevirt += st.Elapsed.Seconds()
		}
	}
	s.other = s.images - s.kubernetes - s.kubevirt - s.coredns
	return s
}

// stepTable lists every step by start, with its offset from the build's start and its time.
func stepTable(r report) string {
	steps := append([]build.StepTime(nil), r.Steps...)
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].Start.Before(steps[j].Start) })
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tTIME\tCOUNTS AS\tSTEP")
	for _, st := range steps {
		c := category(st.Name)
		if c == "" {
			c = "other"
		}
		name := st.Name
		if st.Failed {
			name += " (FAILED)"
		}
		fmt.Fprintf(tw, "%6.0fs\t%6.1fs\t%s\t%s\n", st.Start.Sub(r.Start).Seconds(), st.Elapsed.Seconds(), c, name)
	}
	tw.Flush()
	return b.String()
}

// copyLogs keeps the builder's logs with the timings.
func copyLogs(from, to string) {
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if data, err := os.ReadFile(filepath.Join(from, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(to, e.Name()), data, 0o644)
		}
	}
}

// removeWork deletes the benchmark's caches: the module cache's files are read-only, and the
// builder's root filesystems may still have something mounted after a failure.
func removeWork(work string, modcache bool, stdout io.Writer) {
	ctx := context.Background()
	if modcache {
		clean := exec.Command("go", "clean", "-modcache")
		clean.Env = append(os.Environ(), "GOMODCACHE="+filepath.Join(work, "gomodcache"))
		_ = clean.Run()
	}
	if err := build.RemoveTree(ctx, work); err != nil {
		fmt.Fprintf(stdout, "bench-images: remove %s: %v\n", work, err)
		return
	}
	fmt.Fprintf(stdout, "bench-images: removed %s\n", work)
}
