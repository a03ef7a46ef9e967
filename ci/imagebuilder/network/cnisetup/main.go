// Command pxec-cni-setup runs in pxe-conformance's CNI DaemonSets, on every node. It installs
// the Multus thin plugin and writes Multus's CNI config and kubeconfig itself (Multus's own
// entrypoint writes the API server as https://[10.96.0.1]:443, which Go's URL parser refuses),
// or installs the CNI plugins a node lacks; and it removes again exactly what it installed.
//
// Usage:
//
//	pxec-cni-setup multus  [flags]           install Multus, keep its config current until SIGTERM
//	pxec-cni-setup plugins [flags] NAME...   install the named plugins where absent, then wait
//	pxec-cni-setup cleanup [flags]           remove what the commands above installed on this node
//	pxec-cni-setup ready   [flags]           exit 0 once multus or plugins has finished installing
//
// Host paths are given as the node sees them (--bin-dir /opt/cni/bin) and reached under
// --host-root, where the DaemonSet mounts them. What was installed is recorded, with each
// file's SHA-256, in <bin-dir>/.pxec-<owner>-installed, so cleanup never removes a file
// someone else put there or changed since.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: pxec-cni-setup multus|plugins|cleanup|ready [flags] [NAME...]")
		os.Exit(2)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var c config
	fs.StringVar(&c.hostRoot, "host-root", "/host", "where the node's file system is mounted")
	fs.StringVar(&c.binDir, "bin-dir", "/opt/cni/bin", "the node's CNI plugin directory")
	fs.StringVar(&c.confDir, "conf-dir", "/etc/cni/net.d", "the node's CNI config directory")
	fs.StringVar(&c.source, "source", "/usr/lib/pxec/cni", "directory in the image holding the binaries to install")
	fs.StringVar(&c.owner, "owner", "", "name of the installation, for its record file (default: the command)")
	fs.StringVar(&c.readyFile, "ready-file", "/tmp/pxec-cni-ready", "file created once installation is done")
	fs.StringVar(&c.tokenDir, "token-dir", "/var/run/secrets/kubernetes.io/serviceaccount", "service account token and CA (multus)")
	fs.StringVar(&c.confName, "conf-name", "00-multus.conf", "name of Multus's CNI config; must sort before the default network's (multus)")
	fs.DurationVar(&c.interval, "interval", 5*time.Second, "how often the config and kubeconfig are checked (multus)")
	_ = fs.Parse(os.Args[2:])
	if c.owner == "" {
		c.owner = cmd
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch cmd {
	case "multus":
		err = runMultus(ctx, c, envAPIServer)
	case "plugins":
		err = runPlugins(ctx, c, fs.Args())
	case "cleanup":
		err = cleanup(c)
	case "ready":
		_, err = os.Stat(c.readyFile)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "pxec-cni-setup %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

// config holds the flags every command shares.
type config struct {
	hostRoot, binDir, confDir, source, owner, readyFile, tokenDir, confName string
	interval                                                                time.Duration
}

// host returns where a node path is reached from inside the container.
func (c config) host(p string) string { return c.hostRoot + p }

// statePath is the node path of this installation's record.
func (c config) statePath() string { return c.binDir + "/.pxec-" + c.owner + "-installed" }

// logf prints one timestamped line to standard output, which ends up in the pod's log.
func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// runPlugins installs the named plugins that the node lacks, marks itself ready and waits
// for SIGTERM: the binaries stay, since pods on the node may still need them to be torn down;
// cleanup removes them.
func runPlugins(ctx context.Context, c config, names []string) error {
	if len(names) == 0 {
		return errors.New("name at least one plugin to install")
	}
	st, err := loadState(c.host(c.statePath()))
	if err != nil {
		return err
	}
	if err := installBinaries(c, st, names); err != nil {
		return err
	}
	if err := os.WriteFile(c.readyFile, nil, 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	logf("stopping; installed plugins stay until cleanup")
	return nil
}
