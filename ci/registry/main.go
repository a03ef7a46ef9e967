// Command registry serves and fills image registries for the lab, and pins image sets.
//
//	registry serve  --network NET --dir DIR --files DIR --ready FILE --access-log FILE
//	registry mirror --registry HOST:PORT --files DIR --out SET
//	registry verify --kubeconfig FILE --set SET --access-log FILE
//	registry pin    [--file fixtures/images/upstream.yaml]       (make pin-images)
//
// serve runs go-containerregistry's registry on this host's loopback and, for a kind cluster
// on Docker network NET, on that network's gateway at the same port, with blobs on disk and
// the files of --files under /files/; it logs every request with the client's address, and
// runs until SIGTERM. mirror pushes the images this machine built (ci/imagebuilder) under the
// upstream set's repository names into such a registry, copies the KubeVirt operator manifest
// under /files/, and writes the set of what it pushed, pinned to the digests the registry
// gives; it leaves no image under those names in the local Docker engine, so that a cluster
// made from the set must pull each one. verify proves afterwards that the cluster did: every
// image its pods run from the registry has a kubelet "Successfully pulled" event, the registry
// served each manifest to the nodes, and the node image to this host. pin fills in the digests
// and the manifest's SHA-256 of a set written by tag, where its registries answer
// (ci/registry-e2e.sh runs the first three; see README "Image sources").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	flags := flag.NewFlagSet("registry "+os.Args[1], flag.ExitOnError)
	var run func() error
	switch os.Args[1] {
	case "serve":
		var c serveConfig
		flags.StringVar(&c.network, "network", "", "Docker network whose gateway also gets the registry (the kind cluster's)")
		flags.StringVar(&c.dir, "dir", "", "directory for the registry's blobs")
		flags.StringVar(&c.files, "files", "", "directory served under /files/")
		flags.StringVar(&c.ready, "ready", "", "file to write HOST:PORT GATEWAY:PORT to once listening")
		flags.StringVar(&c.accessLog, "access-log", "", "file to log every request to")
		run = func() error { return serve(ctx, c) }
	case "mirror":
		var c mirrorConfig
		flags.StringVar(&c.registry, "registry", "", "the registry to push to (HOST:PORT, on loopback)")
		flags.StringVar(&c.files, "files", "", "the registry's --files directory, for the operator manifest")
		flags.StringVar(&c.out, "out", "", "image set file to write")
		flags.StringVar(&c.cache, "cache", "", "the image builder's cache (default: its own default)")
		run = func() error { return mirror(ctx, c) }
	case "verify":
		var c verifyConfig
		flags.StringVar(&c.kubeconfig, "kubeconfig", "", "the cluster made from the set")
		flags.StringVar(&c.set, "set", "", "the image set the cluster was made from")
		flags.StringVar(&c.accessLog, "access-log", "", "the registry's access log")
		run = func() error { return verify(ctx, c) }
	case "pin":
		file := flags.String("file", "fixtures/images/upstream.yaml", "image set file to pin in place")
		run = func() error { return pin(ctx, *file) }
	default:
		usage()
	}
	_ = flags.Parse(os.Args[2:])
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "registry %s: %v\n", os.Args[1], err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: registry serve|mirror|verify|pin [flags] (registry <command> -h lists them)")
	os.Exit(2)
}

// usageError is a missing or bad flag; the command exits with status 2.
type usageError struct{ error }

// required returns a usageError naming the first empty flag.
func required(flags ...[2]string) error {
	for _, f := range flags {
		if f[1] == "" {
			return usageError{fmt.Errorf("--%s: required", f[0])}
		}
	}
	return nil
}
