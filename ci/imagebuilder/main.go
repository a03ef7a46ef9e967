package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/node"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// target is one thing the builder can make.
type target struct {
	name  string
	build func(context.Context, build.Options) ([]string, error)
	// onRequest targets are built only when named: the lab cluster does not run them.
	onRequest bool
	// after targets build once the others are done, alone: they share download folders with
	// them.
	after bool
	// includes names a target this one builds too; naming both builds this one only.
	includes string
}

// targets in the order their names are printed. Those not onRequest are built when none is
// named. Named targets build side by side, their compiling steps one at a time.
func targets() []target {
	return []target{
		{name: "node", build: node.Build},
		{name: "kubevirt", build: kubevirt.Build},
		{name: "network", build: network.Build},
		// The whole upstream KubeVirt set (the stock virt-handler and virt-exportserver too),
		// for make e2e-registry's mirror; it includes kubevirt's images.
		{name: "kubevirt-all", build: kubevirt.BuildAll, onRequest: true, includes: "kubevirt"},
		// The plugin image's guest payload is fetched where the PXE server's packages are.
		{name: "sonobuoy", build: network.BuildSonobuoy, onRequest: true, after: true},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("imagebuilder", flag.ContinueOnError)
	flags.SetOutput(stderr)
	force := flags.Bool("force", false, "rebuild images even when their inputs did not change")
	cache := flags.String("cache", build.CacheDir(), "cache directory for downloads, root filesystems, build trees and logs")
	timings := flags.String("timings", "", "write every step's start and duration to this file (JSON), for make bench-images")
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./ci/imagebuilder [--force] [--cache DIR] [--timings FILE] [target...]\ntargets: node, kubevirt, network (the default: all three), kubevirt-all, sonobuoy\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	chosen, err := selectTargets(flags.Args())
	if err != nil {
		fmt.Fprintf(stderr, "imagebuilder: %v\n", err)
		flags.Usage()
		return 2
	}

	logPath, logFile, err := openLog(*cache)
	if err != nil {
		fmt.Fprintf(stderr, "imagebuilder: %v\n", err)
		return 1
	}
	defer logFile.Close()
	fmt.Fprintf(stdout, "imagebuilder: full log in %s\n", logPath)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o := build.Options{
		Cache:    *cache,
		Log:      logFile,
		Progress: build.NewProgress(io.MultiWriter(stdout, logFile), 30*time.Second),
		Force:    *force,
	}
	start := time.Now()
	names, err := buildAll(ctx, o, chosen)
	if *timings != "" {
		if werr := writeTimings(*timings, start, o.Progress.Steps()); werr != nil {
			fmt.Fprintf(stderr, "imagebuilder: %v\n", werr)
			if err == nil {
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "imagebuilder: %v\nfull log: %s\n", err, logPath)
		var runErr *command.Error
		if errors.As(err, &runErr) {
			fmt.Fprintf(stderr, "failed command: %s\n", runErr.Command)
		}
		return 1
	}
	for i, t := range chosen {
		for _, n := range names[i] {
			fmt.Fprintf(stdout, "%s: %s\n", t.name, n)
		}
	}
	fmt.Fprintf(stdout, "imagebuilder: done in %s\n", time.Since(start).Round(time.Second))
	return 0
}

// buildAll builds the chosen targets, side by side but for the after ones, which follow one by
// one, and returns each one's image names in the order of chosen.
func buildAll(ctx context.Context, o build.Options, chosen []target) ([][]string, error) {
	var together []build.Target
	for _, t := range chosen {
		if !t.after {
			together = append(together, build.Target{Name: t.name, Build: t.build})
		}
	}
	first, err := build.BuildConcurrently(ctx, o, together)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, t := range chosen {
		if !t.after {
			out, first = append(out, first[0]), first[1:]
			continue
		}
		n, err := t.build(ctx, o)
		if err != nil {
			return nil, &build.TargetError{Target: t.name, Err: err}
		}
		out = append(out, n)
	}
	return out, nil
}

// timingsReport is what --timings writes: the run's start and end and every step.
type timingsReport struct {
	Start time.Time        `json:"start"`
	End   time.Time        `json:"end"`
	Steps []build.StepTime `json:"steps"`
}

func writeTimings(path string, start time.Time, steps []build.StepTime) error {
	data, err := json.MarshalIndent(timingsReport{Start: start, End: time.Now(), Steps: steps}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write timings: %w", err)
	}
	return nil
}

// selectTargets returns the named targets in build order, all but the onRequest ones when
// none is named.
func selectTargets(names []string) ([]target, error) {
	all := targets()
	if len(names) == 0 {
		var out []target
		for _, t := range all {
			if !t.onRequest {
				out = append(out, t)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		found := false
		for _, t := range all {
			found = found || t.name == n
		}
		if !found {
			return nil, fmt.Errorf("unknown target %q", n)
		}
		want[n] = true
	}
	for _, t := range all {
		if want[t.name] && t.includes != "" {
			delete(want, t.includes)
		}
	}
	var out []target
	for _, t := range all {
		if want[t.name] {
			out = append(out, t)
		}
	}
	return out, nil
}

// openLog creates a new log file under <cache>/logs, named by start time, so runs never mix.
func openLog(cache string) (string, *os.File, error) {
	dir := filepath.Join(cache, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("create log directory: %w", err)
	}
	path := filepath.Join(dir, "imagebuilder-"+time.Now().Format("20060102-150405")+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", nil, fmt.Errorf("create log: %w", err)
	}
	return path, f, nil
}
