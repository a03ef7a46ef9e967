// Command interrupt proves that Ctrl-C leaves nothing behind (`make interrupt`): it starts
// `make e2e` once per phase, sends the run one SIGINT, as a terminal does, when the phase's
// line shows in its output, waits for it to exit, and then looks for what the run may have
// left: its processes, containers, Docker networks, network namespaces, mounts, temporary
// folders, a kubeconfig without a cluster, and on the lab cluster the suite's namespaces,
// VMIs' QEMU processes and port-forwards. It ends with one line per phase and exits 1 when
// anything was left.
//
// The phases, each at the moment the issue names:
//
//	image build        the PXE server image is being built (it is set aside first and put back)
//	kind create        kind is creating the cluster
//	kubevirt install   the KubeVirt operator was just created
//	spec booting       a VMI is PXE booting
//	artifacts          a failed spec's artifacts are being collected (the run's allow-list
//	                   leaves the MAC out, so that the procedure fails at DHCP on purpose)
//
// The first three run on a cluster of their own (PXEC_CLUSTER=<name>-int), which make e2e
// creates and must remove; the last two on the lab cluster, which make e2e leaves running
// (it is brought up first when it does not run, and removed at the end).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// phase is one place in a run of make e2e to interrupt.
type phase struct {
	name string
	// at matches the output line at which the run is interrupted, after delay (Ginkgo colours
	// its STEP lines: match the step's words).
	at    *regexp.Regexp
	delay time.Duration
	// onLab runs the phase on the running lab cluster; otherwise make e2e creates its own.
	onLab bool
	env   []string
	// rebuilds is an image the run is meant to build again: not a leftover.
	rebuilds string
	// prepare readies the phase and returns what puts things back.
	prepare func(ctx context.Context) (func() error, error)
}

const pxeServerImage = "pxec.local/pxe-server:dev"

func phases() []phase {
	return []phase{
		{name: "image build", at: regexp.MustCompile(`^==> image ` + regexp.QuoteMeta(pxeServerImage)), delay: time.Second,
			rebuilds: pxeServerImage, prepare: setAside(pxeServerImage)},
		{name: "kind create", at: regexp.MustCompile(`^==> create kind cluster`), delay: 10 * time.Second},
		{name: "kubevirt install", at: regexp.MustCompile(`^kubevirt: created Deployment kubevirt/virt-operator`), delay: 3 * time.Second},
		{name: "spec booting", at: regexp.MustCompile(`Watch the boot: iPXE opens the bridge interface`), delay: 5 * time.Second,
			onLab: true, env: []string{"E2E_PROCS=1", "E2E_LABELS=certification && bios && !negative"}},
		{name: "artifacts", at: regexp.MustCompile(`collecting the failed spec's artifacts`), delay: 0,
			onLab: true, env: []string{"E2E_PROCS=1", "E2E_LABELS=certification && bios && !negative",
				"SUITE_ARGS=--pxec.allowedMACs=02:00:00:00:00:01"}},
	}
}

func main() {
	lab := flag.String("cluster", "pxec", "the lab cluster's name; the first phases use <name>-int")
	only := flag.String("phase", "", "run only this phase (default: every phase)")
	logs := flag.String("artifacts", "_artifacts/interrupt", "where each phase's make e2e output goes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *lab, *only, *logs); err != nil {
		fmt.Fprintln(os.Stderr, "interrupt:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, lab, only, logs string) (err error) {
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	var selected []phase
	for _, p := range phases() {
		if only == "" || p.name == only {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("--phase %q: no such phase", only)
	}
	var lines []string
	var left int
	for _, p := range selected {
		cluster := lab + "-int"
		if p.onLab {
			cluster = lab
			down, err := ensureCluster(ctx, lab)
			if err != nil {
				return err
			}
			if down != nil {
				defer func() { err = errors.Join(err, down()) }()
			}
		} else if running(ctx, cluster) {
			return fmt.Errorf("cluster %s runs already: phase %q needs make e2e to create it (go run ./ci/cluster down --name %s)", cluster, p.name, cluster)
		}
		res, err := interrupt(ctx, p, cluster, filepath.Join(logs, strings.ReplaceAll(p.name, " ", "-")+".log"))
		if err != nil {
			return fmt.Errorf("phase %s: %w", p.name, err)
		}
		line := fmt.Sprintf("%-17s %s", p.name, res)
		fmt.Println(line)
		lines = append(lines, line)
		left += len(res.left)
	}
	fmt.Println("\n" + strings.Join(lines, "\n"))
	if left > 0 {
		return fmt.Errorf("%d things left behind (above)", left)
	}
	return nil
}

// result is what one interrupted run did and left.
type result struct {
	// reached says the phase's line showed; exited is how long the run took to exit after
	// the SIGINT, and code how it ended.
	reached bool
	exited  time.Duration
	code    string
	left    []string
}

func (r result) String() string {
	if !r.reached {
		return fmt.Sprintf("NOT REACHED (%s): the phase's line never showed", r.code)
	}
	verdict := "nothing left"
	if len(r.left) > 0 {
		verdict = "LEFT: " + strings.Join(r.left, "; ")
	}
	return fmt.Sprintf("interrupted; %s after %s; %s", r.code, r.exited.Round(100*time.Millisecond), verdict)
}

// interrupt runs make e2e for p, interrupts it and looks for what it left.
func interrupt(ctx context.Context, p phase, cluster, logPath string) (result, error) {
	var res result
	restore := func() error { return nil }
	if p.prepare != nil {
		r, err := p.prepare(ctx)
		if err != nil {
			return res, err
		}
		restore = r
	}
	before, err := look(ctx, cluster, p.onLab)
	if err != nil {
		return res, errors.Join(err, restore())
	}
	log, err := os.Create(logPath)
	if err != nil {
		return res, errors.Join(err, restore())
	}
	defer log.Close()
	// The run's own TMPDIR: whatever it leaves there is its own, whatever else runs here.
	tmp, err := os.MkdirTemp("", "interrupt-tmp-")
	if err != nil {
		return res, errors.Join(err, restore())
	}
	// Removed only when empty: what the run left there stays for a look.
	defer os.Remove(tmp)
	fmt.Fprintf(os.Stderr, "interrupt: phase %s: make e2e (log %s)\n", p.name, logPath)

	cmd := exec.Command("make", "--no-print-directory", "e2e")
	cmd.Env = append(os.Environ(), append([]string{"PXEC_CLUSTER=" + cluster, runMarker + "=" + p.name, "TMPDIR=" + tmp}, p.env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return res, errors.Join(err, restore())
	}
	cmd.Stderr = cmd.Stdout.(io.Writer)
	if err := cmd.Start(); err != nil {
		return res, errors.Join(err, restore())
	}
	pgid := cmd.Process.Pid
	reached := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		seen := false
		for s.Scan() {
			fmt.Fprintln(log, s.Text())
			if !seen && p.at.MatchString(s.Text()) {
				seen = true
				close(reached)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var sent time.Time
	select {
	case <-reached:
		res.reached = true
		select {
		case <-time.After(p.delay):
		case <-ctx.Done():
		}
		sent = time.Now()
		fmt.Fprintf(os.Stderr, "interrupt: phase %s: SIGINT to make e2e's process group\n", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGINT)
	case err := <-done:
		res.code = exitCode(err)
		return res, restore()
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGINT)
		<-done
		return res, errors.Join(ctx.Err(), restore())
	}
	select {
	case err := <-done:
		res.exited, res.code = time.Since(sent), exitCode(err)
	case <-time.After(10 * time.Minute):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		res.exited, res.code = time.Since(sent), "killed"
		res.left = append(res.left, "make e2e still ran 10 minutes after SIGINT (killed)")
	}
	if alive(pgid) {
		res.left = append(res.left, fmt.Sprintf("processes of the run's group %d still run: %s", pgid, groupProcesses(pgid)))
	}
	after, err := look(ctx, cluster, p.onLab)
	if err != nil {
		return res, errors.Join(err, restore())
	}
	for _, l := range after.since(before) {
		if l != "image "+p.rebuilds {
			res.left = append(res.left, l)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		for _, e := range entries {
			res.left = append(res.left, "temporary "+filepath.Join(tmp, e.Name()))
		}
	}
	return res, restore()
}

// exitCode is how the run ended: "exit <code>", or the signal that ended make itself.
func exitCode(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "ended by " + ws.Signal().String()
		}
		return fmt.Sprintf("exit %d", ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return "exit 0"
}

// setAside renames image so that make e2e has to build it, and puts it back afterwards unless
// the run built it again.
func setAside(image string) func(ctx context.Context) (func() error, error) {
	return func(ctx context.Context) (func() error, error) {
		aside := image + "-interrupt-aside"
		if err := docker(ctx, "tag", image, aside); err != nil {
			return nil, fmt.Errorf("set %s aside: %w", image, err)
		}
		if err := docker(ctx, "rmi", image); err != nil {
			return nil, fmt.Errorf("set %s aside: %w", image, err)
		}
		return func() error {
			ctx := context.WithoutCancel(ctx)
			if docker(ctx, "image", "inspect", image) != nil {
				if err := docker(ctx, "tag", aside, image); err != nil {
					return fmt.Errorf("put %s back: %w", image, err)
				}
			}
			return docker(ctx, "rmi", aside)
		}, nil
	}
}

func docker(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func running(ctx context.Context, cluster string) bool {
	out, _ := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "name=^"+cluster+"-control-plane$", "--format", "{{.Names}}").Output()
	return len(out) > 0
}

// ensureCluster brings the lab cluster up when it does not run, and returns what removes it
// again (nil when it ran already).
func ensureCluster(ctx context.Context, name string) (func() error, error) {
	if running(ctx, name) {
		return nil, nil
	}
	fmt.Fprintf(os.Stderr, "interrupt: bringing the lab cluster %s up for the phases that need it\n", name)
	up := exec.CommandContext(ctx, "go", "run", "./ci/cluster", "up", "--name", name)
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	if err := up.Run(); err != nil {
		return nil, fmt.Errorf("bring cluster %s up: %w", name, err)
	}
	return func() error {
		down := exec.Command("go", "run", "./ci/cluster", "down", "--name", name)
		down.Stdout, down.Stderr = os.Stderr, os.Stderr
		return down.Run()
	}, nil
}

// alive says whether any process of group pgid still runs.
func alive(pgid int) bool {
	return syscall.Kill(-pgid, 0) == nil
}

func groupProcesses(pgid int) string {
	out, _ := exec.Command("ps", "-o", "pid=,args=", "-g", fmt.Sprint(pgid)).Output()
	return strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", " | ")), " ")
}
