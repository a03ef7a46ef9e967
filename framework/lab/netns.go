package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// NamePrefix starts the name of every namespace and link the lab creates on a host, so that
// Sweep can find what a killed run left behind.
const NamePrefix = "pxec-lab-"

// Namespace is a network namespace the lab created.
type Namespace struct {
	// Name is the namespace's name under /run/netns.
	Name string
}

// CreateNamespace creates a network namespace with loopback up. Its name is NamePrefix, the
// given suffix and this process's PID, so Sweep can tell a live run's namespaces from a dead one's.
func CreateNamespace(ctx context.Context, suffix string) (*Namespace, error) {
	name := fmt.Sprintf("%s%s-%d", NamePrefix, suffix, os.Getpid())
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", name, err)
	}
	ns := &Namespace{Name: name}
	if err := ns.Run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		return ns, fmt.Errorf("create namespace %s: %w", name, err)
	}
	return ns, nil
}

// Path is the namespace's file, for setns(2).
func (n *Namespace) Path() string { return filepath.Join("/run/netns", n.Name) }

// Wrap is the command prefix that runs a program inside the namespace.
func (n *Namespace) Wrap() []string { return []string{"ip", "netns", "exec", n.Name} }

// Run runs a command inside the namespace.
func (n *Namespace) Run(ctx context.Context, argv ...string) error {
	return run(ctx, append(n.Wrap(), argv...)...)
}

// Output runs a command inside the namespace and returns its standard output.
func (n *Namespace) Output(ctx context.Context, argv ...string) (string, error) {
	return output(ctx, append(n.Wrap(), argv...)...)
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn opens stay in the
// namespace after it returns. The thread is never handed back to the Go scheduler: it exits
// with the goroutine, so no other code ever runs in the wrong namespace.
func (n *Namespace) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the runtime ends a thread still locked when its goroutine exits.
		f, err := os.Open(n.Path())
		if err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: setns: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialContext connects from inside the namespace.
func (n *Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	return conn, err
}

// Delete kills every process left in the namespace and removes it, with every link in it.
func (n *Namespace) Delete(ctx context.Context) error {
	killNamespacePIDs(ctx, n.Name)
	if err := run(ctx, "ip", "netns", "delete", n.Name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", n.Name, err)
	}
	return nil
}

func killNamespacePIDs(ctx context.Context, name string) {
	out, err := output(ctx, "ip", "netns", "pids", name)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Sweep deletes lab namespaces whose creating process no longer runs: what a run killed with
// SIGKILL (or a crashed test binary) left behind. It returns the names it deleted.
func Sweep(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep lab namespaces: %w", err)
	}
	var deleted []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, NamePrefix) {
			continue
		}
		i := strings.LastIndexByte(name, '-')
		pid, perr := strconv.Atoi(name[i+1:])
		if perr == nil && processAlive(pid) {
			continue
		}
		ns := &Namespace{Name: name}
		if err := ns.Delete(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted = append(deleted, name)
	}
	return deleted, errors.Join(errs...)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// run runs a command; a failure carries the exact command line and its output.
func run(ctx context.Context, argv ...string) error {
	_, err := output(ctx, argv...)
	return err
}

func output(ctx context.Context, argv ...string) (string, error) {
	out, err := command.Output(ctx, exec.CommandContext(ctx, argv[0], argv[1:]...))
	return string(out), err
}
