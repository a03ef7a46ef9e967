// Command soak runs the conformance suite N times on one cluster (`make soak N=20`) and ends
// with a table of every spec by passes, failures and skips, naming each failure's run, message
// and artifacts folder.
//
// Each run is `bash ci/e2e.sh`, the command `make e2e` runs, with its own artifacts folder
// (<artifacts>/run-01, run-02, ...), so a failed spec keeps the diagnostics the suite collected
// for it and its results bundle. The lab cluster "pxec" is used when it runs; otherwise soak
// brings it up once (go run ./ci/cluster up), before the first run, and removes it after the
// last, also when interrupted. PXEC_CLUSTER names another cluster, as for ci/e2e.sh. A run that fails goes into the table; the next run still starts.
//
// The table is printed and written to <artifacts>/soak.md. soak exits 1 when any spec failed in
// any run, or a run left no report.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/framework/results"
)

func main() {
	runs := flag.Int("runs", 20, "how many times to run the suite")
	out := flag.String("artifacts", "_artifacts/soak", "where each run's artifacts go (run-01, run-02, ...) and soak.md")
	flag.Parse()
	if *runs < 1 {
		fmt.Fprintf(os.Stderr, "soak: --runs %d: want at least 1\n", *runs)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *runs, *out)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, runs int, out string) (err error) {
	out, err = filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	name := os.Getenv("PXEC_CLUSTER")
	if name == "" {
		name = "pxec"
	}
	up, err := clusterRunning(ctx, name)
	if err != nil {
		return err
	}
	if !up {
		say("no lab cluster runs: bringing one up for all %d runs", runs)
		if err := command(ctx, os.Stderr, "go", "run", "./ci/cluster", "up", "--name", name); err != nil {
			return fmt.Errorf("bring the cluster up: %w", err)
		}
		defer func() {
			say("removing the cluster soak created")
			// The run's context may be cancelled by now: removal must still happen.
			if derr := command(context.WithoutCancel(ctx), os.Stderr, "go", "run", "./ci/cluster", "down", "--name", name); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove the cluster: %w", derr))
			}
		}()
	}

	var t tally
	for i := 1; i <= runs && ctx.Err() == nil; i++ {
		dir := filepath.Join(out, fmt.Sprintf("run-%02d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		logPath := filepath.Join(dir, "e2e.log")
		log, err := os.Create(logPath)
		if err != nil {
			return err
		}
		say("run %d of %d (log %s)", i, runs, logPath)
		start := time.Now()
		runErr := commandEnv(ctx, log, []string{"ARTIFACTS=" + dir}, "bash", "ci/e2e.sh")
		log.Close()
		report, readErr := results.ReadReport(dir)
		if readErr != nil {
			t.addBroken(i, fmt.Sprintf("no suite report (%v; e2e: %v): see %s", readErr, runErr, logPath))
			say("run %d: no report after %s", i, time.Since(start).Round(time.Second))
			continue
		}
		passed, failed := t.add(i, dir, report)
		say("run %d: %d passed, %d failed in %s", i, passed, failed, time.Since(start).Round(time.Second))
	}
	table := t.table()
	fmt.Print(table)
	if err := os.WriteFile(filepath.Join(out, "soak.md"), []byte(table), 0o644); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted after %d of %d runs", t.runs, runs)
	}
	if n := t.failures(); n > 0 {
		return fmt.Errorf("%d failures in %d runs (table above, also in %s)", n, runs, filepath.Join(out, "soak.md"))
	}
	return nil
}

// clusterRunning says whether the kind cluster's control plane container exists.
func clusterRunning(ctx context.Context, name string) (bool, error) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "name=^"+name+"-control-plane$", "--format", "{{.Names}}").Output()
	if err != nil {
		return false, fmt.Errorf("docker ps: %w (is the engine up? make cluster-deps starts it)", err)
	}
	return len(out) > 0, nil
}

func command(ctx context.Context, w io.Writer, name string, args ...string) error {
	return commandEnv(ctx, w, nil, name, args...)
}

// commandEnv runs name with the environment plus env, its output to w, in a process group of
// its own. On cancellation its group gets one SIGINT, as from a terminal, so that it cleans up
// (a second one would make Ginkgo skip its cleanup), and is killed only after a grace period.
func commandEnv(ctx context.Context, w io.Writer, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Minute
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w", name, args, err)
	}
	return nil
}

func say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", a...)
}
