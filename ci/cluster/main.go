// Command cluster brings up the lab cluster and proves it can PXE boot, or removes it.
//
//	go run ./ci/cluster up            # make cluster
//	go run ./ci/cluster down          # make cluster-down
//	go run ./ci/cluster list-images   # make list-images
//
// "up" takes its images from registries or builds them here (PXEC_IMAGES=auto|upstream|offline,
// PXEC_IMAGES_FILE; see sources.go and README "Image sources") and prints where each came from.
// Offline, it builds every image from Go modules and Debian packages (ci/imagebuilder, cached
// by inputs); from an image set, it builds only the CNI plugins, the PXE server and, where the
// kernel has no dummy links, our adapted virt-handler. It creates a kind cluster, loads the
// images it built into the nodes, installs Multus and KubeVirt (with emulation when KVM cannot
// run guests), creates the node bridge, and then proves the whole path: a diskless VMI whose
// bridge interface sits on a NetworkAttachmentDefinition for that bridge (no IPAM, MAC
// de:00:00:00:00:de, bootOrder 1, BIOS serial) reaches Running and its serial console, read
// through kubevirt.io/client-go, shows iPXE starting on that interface. Ctrl-C, or any failure,
// deletes the cluster again. "down" deletes the cluster and the kubeconfig "up" wrote.
// "list-images" prints the images of the set in use, one reference per line.
//
// Bad values of the variables or flags end the command with exit status 2 (build it rather
// than `go run` it to see that status; go run turns it into 1).
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/node"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/kvm"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

func main() {
	verbs := []string{"up", "down", "images-present", "list-images"}
	if len(os.Args) < 2 || !slices.Contains(verbs, os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down|images-present|list-images [--name pxec] [--kubeconfig FILE] [--bridge br1] [--isolation-bridge br2] [--node-registry HOST=URL]")
		os.Exit(2)
	}
	verb := os.Args[1]
	flags := flag.NewFlagSet("cluster "+verb, flag.ExitOnError)
	cache := flags.String("cache", build.CacheDir(), "cache directory (images' inputs, logs)")
	name := flags.String("name", "pxec", "kind cluster name")
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig to write (default <cache>/kind-<name>.kubeconfig)")
	bridge := flags.String("bridge", "br1", "node bridge for the PXE network")
	isolation := flags.String("isolation-bridge", "br2", "second node bridge, unconnected to --bridge, for the suite's isolation spec; empty for none")
	keep := flags.Bool("keep-on-failure", false, "leave the cluster up when the proof fails, for debugging")
	var registries []cluster.CreateOption
	flags.Func("node-registry", "HOST=URL: the nodes pull images named HOST/... from URL (a registry on this host's loopback, served on the nodes' network); repeatable", func(v string) error {
		host, endpoint, ok := strings.Cut(v, "=")
		if !ok {
			return fmt.Errorf("%q: want HOST=URL, e.g. 127.0.0.1:5000=http://172.18.0.1:5000", v)
		}
		registries = append(registries, cluster.WithRegistryEndpoint(host, endpoint))
		return nil
	})
	_ = flags.Parse(os.Args[2:])
	if *kubeconfig == "" {
		*kubeconfig = filepath.Join(*cache, "kind-"+*name+".kubeconfig")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch verb {
	case "up":
		err = up(ctx, upConfig{cache: *cache, name: *name, kubeconfig: *kubeconfig, bridge: *bridge, isolation: *isolation, keep: *keep, registries: registries})
	case "down":
		err = down(ctx, *name, *kubeconfig)
	case "images-present":
		err = imagesPresent(ctx, build.Options{Cache: *cache})
	case "list-images":
		err = listImages(os.Stdout, os.Getenv, build.Options{Cache: *cache})
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "cluster: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "cluster:", err)
		var usage usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type upConfig struct {
	cache, name, kubeconfig, bridge, isolation string
	keep                                       bool
	registries                                 []cluster.CreateOption // WithRegistryEndpoint, from --node-registry
}

func up(ctx context.Context, cfg upConfig) (err error) {
	start := time.Now()
	logPath := filepath.Join(cfg.cache, "logs", "cluster-"+time.Now().Format("20060102-150405")+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	out := io.MultiWriter(os.Stdout, logFile)
	fmt.Fprintf(out, "cluster: full log in %s\n", logPath)
	progress := build.NewProgress(out, 30*time.Second)
	o := build.Options{Cache: cfg.cache, Log: logFile, Progress: progress}

	// 1. Images: from the image set's registries, or built from Go modules and Debian packages.
	req, err := readRequest(os.Getenv)
	if err != nil {
		return err
	}
	src, err := choose(ctx, req, out)
	if err != nil {
		return err
	}
	d, err := prepare(ctx, src, o)
	if err != nil {
		return err
	}
	printTable(out, src, o)

	// 2. The cluster. Anything that fails from here on (or Ctrl-C) deletes it again.
	probe, err := kvm.Probe(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cluster: guests run with KVM: %v (%s)\n", probe.Usable, probe.Reason)
	var c *cluster.Cluster
	if err := progress.Step("create kind cluster "+cfg.name, func() error {
		var err error
		opts := append([]cluster.CreateOption{cluster.WithNodeImage(d.nodeImage),
			cluster.WithKVM(probe.Usable), cluster.WithKubeconfig(cfg.kubeconfig), cluster.WithLog(logFile)}, cfg.registries...)
		c, err = cluster.CreateKind(ctx, cfg.name, opts...)
		return err
	}); err != nil {
		return err
	}
	defer func() {
		if err == nil || (cfg.keep && ctx.Err() == nil) {
			return
		}
		c2, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		fmt.Fprintln(out, "cluster: deleting the cluster after the failure")
		if derr := c.Delete(c2); derr != nil {
			err = errors.Join(err, derr)
			return
		}
		// The kubeconfig names a cluster that is gone (kind empties it but leaves the file).
		for _, f := range []string{cfg.kubeconfig, networkMarker(cfg.kubeconfig)} {
			if rerr := os.Remove(f); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}()
	// Remember a Docker network this run made, so "down" removes it too.
	if n := c.CreatedNetwork(); n != "" {
		if err := os.WriteFile(networkMarker(cfg.kubeconfig), []byte(n), 0o644); err != nil {
			return err
		}
	}
	if err := progress.Step(fmt.Sprintf("load %d images built here into the nodes", len(d.load)), func() error {
		return c.LoadImages(ctx, d.load...)
	}); err != nil {
		return err
	}

	// 3. Multus, KubeVirt, the node bridge, and the proof.
	if err := install(ctx, c, d, o.Progress, probe.Usable, out, cfg.bridge, cfg.isolation); err != nil {
		return err
	}
	proof := settings.Default()
	if !probe.Usable {
		proof = proof.ForEmulation()
	}
	if err := prove(ctx, c, cfg.bridge, proof.Timeouts, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ncluster: %s is up and PXE-capable in %s\n", cfg.name, time.Since(start).Round(time.Second))
	fmt.Fprintf(out, "cluster: KubeVirt %s runs virt-handler %s\n", kubevirt.Version, d.handler)
	printTable(out, src, o)
	fmt.Fprintf(out, "cluster: export KUBECONFIG=%s\n", cfg.kubeconfig)
	return nil
}

func down(ctx context.Context, name, kubeconfig string) error {
	deleted, err := cluster.DeleteKind(ctx, name, kubeconfig)
	if err != nil {
		return err
	}
	if !deleted {
		fmt.Printf("cluster: no kind cluster %q to delete\n", name)
	} else {
		fmt.Printf("cluster: deleted kind cluster %q\n", name)
	}
	if n, err := os.ReadFile(networkMarker(kubeconfig)); err == nil {
		if err := cluster.RemoveNetworkIfUnused(ctx, string(n)); err != nil {
			return err
		}
		fmt.Printf("cluster: removed Docker network %q, which \"up\" had created\n", n)
		_ = os.Remove(networkMarker(kubeconfig))
	}
	if err := os.Remove(kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// imagesPresent reports whether the local engine holds every image "up" deploys, so that a CI
// job can tell a machine where "up" only rebuilds what changed from one where it would build
// everything from nothing.
func imagesPresent(ctx context.Context, o build.Options) error {
	kv := kubevirt.ImageNames(o)
	want := append([]string{node.ImageName(o), kv.Operator, kv.API, kv.Controller, kv.Launcher, kv.ExportProxy, kv.HandlerNoDummy},
		network.ImageNames(o)...)
	var missing []string
	for _, img := range want {
		if err := exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", img).Run(); err != nil {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%d of %d images not built on this machine yet: %s", len(missing), len(want), strings.Join(missing, " "))
	}
	fmt.Printf("cluster: all %d images are present\n", len(want))
	return nil
}

// networkMarker is where "up" records a Docker network it created, for "down".
func networkMarker(kubeconfig string) string { return kubeconfig + ".network" }
