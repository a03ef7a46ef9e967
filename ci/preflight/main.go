// Command preflight runs the conformance suite's preflight checks against a cluster and
// nothing else (`make preflight KUBECONFIG=...`): the checks the suite runs first
// (framework/preflight, through framework/e2e.Preflight), with the settings loaded as the suite
// loads them (suites/config: a file, PXEC_* variables, --pxec.* flags). It prints one line per
// check,
//
//	PASS|FAIL|SKIP  <check>  <reason>[ — <what to do>]
//
// and exits 1 when a required check failed (or the checks could not run), 2 on bad settings,
// 0 otherwise. It creates only its node probes' namespace, <namespace>-preflight-<random>, and
// removes it before it exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pxe-conformance/pxe-conformance/framework/e2e"
	"github.com/pxe-conformance/pxe-conformance/suites/config"
)

// Exit codes.
const (
	exitPass      = 0
	exitFail      = 1
	exitBadConfig = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("preflight", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitBadConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "preflight: unexpected arguments %q: settings are --pxec.* flags\n", fs.Args())
		return exitBadConfig
	}
	cfg, err := flags.Load(os.LookupEnv)
	if err == nil {
		cfg, err = e2e.Resolve(cfg)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitBadConfig
	}
	env, report, err := e2e.Preflight(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	werr := report.Write(stdout)
	// The probe namespace goes even when ctx was cancelled: Close runs to its own bound.
	cerr := env.Close(context.WithoutCancel(ctx))
	if err := errors.Join(werr, cerr); err != nil {
		fmt.Fprintf(stderr, "preflight: %v\n", err)
		return exitFail
	}
	if n := len(report.Failed()); n > 0 {
		fmt.Fprintf(stderr, "preflight: %d required check(s) failed\n", n)
		return exitFail
	}
	return exitPass
}
