package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvbuild "github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/node"
	"github.com/pxe-conformance/pxe-conformance/fixtures/images"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
)

type mirrorConfig struct {
	registry, files, out, cache string
}

// manifestFile is the operator manifest's name under the registry's /files/.
const manifestFile = "kubevirt-operator.yaml"

// builtImages maps each field of an image set to the image this machine's builder makes for
// it: the stock virt-handler, as upstream ships it (a run still deploys our adapted one where
// the kernel has no dummy links).
func builtImages(o build.Options) map[string]string {
	kv := kvbuild.ImageNames(o)
	return map[string]string{
		"kindNode":              node.ImageName(o),
		"kubevirt.operator":     kv.Operator,
		"kubevirt.api":          kv.API,
		"kubevirt.controller":   kv.Controller,
		"kubevirt.handler":      kv.Handler,
		"kubevirt.launcher":     kv.Launcher,
		"kubevirt.exportProxy":  kv.ExportProxy,
		"kubevirt.exportServer": kv.ExportServer,
		"multus":                network.MultusImage(o),
	}
}

// mirror pushes the images built here under the upstream set's repository names and tags into
// the registry, and writes the set of what it pushed, pinned by the digests the registry gives.
func mirror(ctx context.Context, c mirrorConfig) error {
	if err := required([2]string{"registry", c.registry}, [2]string{"files", c.files}, [2]string{"out", c.out}); err != nil {
		return err
	}
	o := build.Options{Cache: c.cache}
	if o.Cache == "" {
		o.Cache = build.CacheDir()
	}
	upstream, err := imageset.Parse(images.Upstream(), images.UpstreamFile)
	if err != nil {
		return err
	}
	built := builtImages(o)
	set := *upstream
	set.File = c.out
	// Each image is pushed by the ID its name has now: another build that retags the name
	// while the pushes run (other checkouts share the engine) cannot swap it.
	ids := map[string]string{}
	for _, img := range set.Images() {
		local, ok := built[img.Field]
		if !ok {
			return fmt.Errorf("no image of this machine's builder stands for %s", img.Field)
		}
		out, err := command.Output(ctx, exec.CommandContext(ctx, "docker", "image", "inspect", "--format", "{{.Id}}", local))
		if err != nil {
			return fmt.Errorf("%s: %s not built here (go run ./ci/imagebuilder kubevirt-all): %w", img.Field, local, err)
		}
		ids[img.Field] = strings.TrimSpace(string(out))
	}
	for _, img := range set.Images() {
		target, err := mirrored(c.registry, *img.Ref)
		if err != nil {
			return fmt.Errorf("%s: %w", img.Field, err)
		}
		start := time.Now()
		if err := push(ctx, ids[img.Field], target); err != nil {
			return fmt.Errorf("%s: %w", img.Field, err)
		}
		fmt.Printf("mirror: %-22s %s (%.19s) pushed as %s in %s\n", img.Field, built[img.Field], ids[img.Field], target, time.Since(start).Round(100*time.Millisecond))
		*img.Ref = target
	}

	manifest, err := os.ReadFile(kvbuild.ManifestPath(o))
	if err != nil {
		return fmt.Errorf("KubeVirt operator manifest (build it: go run ./ci/imagebuilder kubevirt): %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.files, manifestFile), manifest, 0o644); err != nil {
		return err
	}
	set.KubeVirt.OperatorManifest = imageset.Manifest{URL: "http://" + c.registry + "/files/" + manifestFile}

	pinned, err := set.Pin(ctx)
	if err != nil {
		return err
	}
	if err := pinned.Validate(); err != nil {
		return err
	}
	// A cluster made from the set must pull every image: none may stay in the local engine
	// under these names, neither by tag nor by the digest push recorded.
	for _, ref := range pinned.References() {
		d, err := name.NewDigest(ref)
		if err != nil {
			return err
		}
		// Absent already is as good: the inspection below is what counts.
		_, _ = command.Output(ctx, exec.CommandContext(ctx, "docker", "image", "rm", d.Context().String()+"@"+d.DigestStr()))
		if _, err := command.Output(ctx, exec.CommandContext(ctx, "docker", "image", "inspect", ref)); err == nil {
			return fmt.Errorf("the local Docker engine still holds %s after the push", ref)
		}
	}
	var b bytes.Buffer
	header := fmt.Sprintf("# Written by ci/registry mirror at %s: this machine's builds under the upstream\n"+
		"# set's repository names and tags in the registry at %s, pinned to the digests it gave.\n",
		time.Now().UTC().Format(time.RFC3339), c.registry)
	if err := pinned.Write(&b, header); err != nil {
		return err
	}
	if err := os.WriteFile(c.out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("mirror: wrote %s\n", c.out)
	return nil
}

// mirrored names ref's repository and tag in registry: quay.io/kubevirt/virt-api:v1.9.0@sha256:...
// becomes <registry>/kubevirt/virt-api:v1.9.0.
func mirrored(registry, ref string) (string, error) {
	base, _, _ := strings.Cut(ref, "@")
	tag, err := name.NewTag(base)
	if err != nil {
		return "", fmt.Errorf("reference %q: %w", ref, err)
	}
	if !strings.Contains(base, ":") || tag.TagStr() == "" {
		return "", fmt.Errorf("reference %q has no tag to push under", ref)
	}
	return registry + "/" + tag.RepositoryStr() + ":" + tag.TagStr(), nil
}

// push pushes a local image (by ID) under target with docker, and removes the target tag again.
func push(ctx context.Context, id, target string) error {
	for _, args := range [][]string{{"tag", id, target}, {"push", "--quiet", target}, {"image", "rm", target}} {
		if _, err := command.Output(ctx, exec.CommandContext(ctx, "docker", args...)); err != nil {
			return err
		}
	}
	return nil
}
