package main

import (
	"context"
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
}

// targets in build order: the node first, since a cluster needs it before anything else can
// run. Those not onRequest are built when none is named.
func targets() []target {
	return []target{
		{name: "node", build: node.Build},
		{name: "kubevirt", build: kubevirt.Build},
		{name: "network", build: network.Build},
		{name: "sonobuoy", build: network.BuildSonobuoy, onRequest: true},
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
	flags.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./ci/imagebuilder [--force] [--cache DIR] [target...]\ntargets: node, kubevirt, network (the default: all three), sonobuoy\n")
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
	for _, t := range chosen {
		names, err := t.build(ctx, o)
		if err != nil {
			fmt.Fprintf(stderr, "imagebuilder: target %s failed: %v\nfull log: %s\n", t.name, err, logPath)
			var runErr *command.Error
			if errors.As(err, &runErr) {
				fmt.Fprintf(stderr, "failed command: %s\n", runErr.Command)
			}
			return 1
		}
		for _, n := range names {
			fmt.Fprintf(stdout, "%s: %s\n", t.name, n)
		}
	}
	fmt.Fprintf(stdout, "imagebuilder: done in %s\n", time.Since(start).Round(time.Second))
	return 0
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
