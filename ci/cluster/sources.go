package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	kvbuild "github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/node"
	"github.com/pxe-conformance/pxe-conformance/fixtures/images"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
)

// The variables that choose where a run's images come from (README, "Image sources").
const (
	modeVar = "PXEC_IMAGES"      // auto (default), upstream or offline
	fileVar = "PXEC_IMAGES_FILE" // another set than fixtures/images/upstream.yaml: a mirror
)

const (
	modeAuto     = "auto"
	modeUpstream = "upstream"
	modeOffline  = "offline"
)

// usageError is a bad value of a variable or flag; the command exits with status 2.
type usageError struct{ error }

// request is what the variables ask for.
type request struct {
	mode string
	// set is the image set named (or the upstream one); nil when it cannot be used, and then
	// unusable says why.
	set      *imageset.Set
	unusable error
	// label is the source the set's images are shown with: "upstream" for
	// fixtures/images/upstream.yaml, "registry" for a set PXEC_IMAGES_FILE names.
	label string
}

// readRequest reads PXEC_IMAGES and PXEC_IMAGES_FILE. A bad value, or a set file that cannot
// be read or is not fully pinned, is a usageError; so is an upstream set that is not pinned
// when PXEC_IMAGES=upstream asks for it. With auto, an unpinned upstream set only means
// building offline.
func readRequest(getenv func(string) string) (request, error) {
	r := request{mode: getenv(modeVar)}
	switch r.mode {
	case "":
		r.mode = modeAuto
	case modeAuto, modeUpstream, modeOffline:
	default:
		return r, usageError{fmt.Errorf("%s %q: want %s, %s or %s", modeVar, r.mode, modeAuto, modeUpstream, modeOffline)}
	}
	if file := getenv(fileVar); file != "" {
		set, err := imageset.Load(file)
		if err != nil {
			return r, usageError{fmt.Errorf("%s: %w", fileVar, err)}
		}
		r.set, r.label = set, "registry"
		return r, nil
	}
	r.label = "upstream"
	set, err := imageset.Parse(images.Upstream(), images.UpstreamFile)
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		if r.mode == modeUpstream {
			return r, usageError{fmt.Errorf("%s=%s: %w", modeVar, modeUpstream, err)}
		}
		r.unusable = err
		return r, nil
	}
	r.set = set
	return r, nil
}

// sources is where this run's images come from.
type sources struct {
	request
	// registry is true when the set's images are deployed; false when every image is built
	// here (offline).
	registry bool
	// why says how the choice was made.
	why string
	// noDummy is true when the kernel refuses dummy links, so virt-handler is our adapted
	// build; dummyWhy is the kernel's answer.
	noDummy  bool
	dummyWhy string
}

// choose decides between the set's images and offline builds. offline builds; upstream
// requires every reference of the set to answer; auto takes the set only when every
// reference answers, and says which did not otherwise. Each answer is printed to out.
func choose(ctx context.Context, r request, out io.Writer) (sources, error) {
	s := sources{request: r}
	switch {
	case r.mode == modeOffline:
		s.why = modeVar + "=" + modeOffline
		return s, nil
	case r.set == nil:
		s.why = fmt.Sprintf("%s=%s, and %v", modeVar, r.mode, r.unusable)
		return s, nil
	}
	start := time.Now()
	answers := r.set.Check(ctx, imageset.DefaultCheckTimeout)
	took := fmt.Sprintf("%.1fs", time.Since(start).Seconds())
	for _, a := range answers {
		verdict := "answered"
		if !a.OK {
			verdict = "NO ANSWER"
		}
		fmt.Fprintf(out, "images: %-9s %s %s (%s)\n", verdict, a.Field, a.Ref, a.Detail)
	}
	bad := imageset.Unreachable(answers)
	if len(bad) == 0 {
		s.registry = true
		s.why = fmt.Sprintf("%s=%s: every reference of %s answered (checked in %s)", modeVar, r.mode, r.set.File, took)
		s.noDummy, s.dummyWhy = kernelLacksDummy(ctx)
		return s, nil
	}
	// The first one in full; every answer is printed above.
	msg := fmt.Sprintf("%d of %d references of %s did not answer within %s: %s %s: %s", len(bad), len(answers), r.set.File, took, bad[0].Field, bad[0].Ref, bad[0].Detail)
	if len(bad) > 1 {
		var others []string
		for _, a := range bad[1:] {
			others = append(others, a.Field)
		}
		msg += "; and " + strings.Join(others, ", ")
	}
	if r.mode == modeUpstream {
		return s, fmt.Errorf("%s=%s: %s", modeVar, modeUpstream, msg)
	}
	s.why = fmt.Sprintf("%s=%s, and %s", modeVar, r.mode, msg)
	return s, nil
}

// kernelLacksDummy asks this machine's kernel, which kind's nodes share, for a dummy link in
// a throwaway network namespace. KubeVirt's bridge binding needs one; where the kernel has
// none (or the question cannot be asked), our adapted virt-handler runs instead of upstream's.
func kernelLacksDummy(ctx context.Context) (bool, string) {
	cmd := exec.CommandContext(ctx, "unshare", "--net", "ip", "link", "add", "pxec-probe", "type", "dummy")
	if _, err := command.Output(ctx, cmd); err != nil {
		var cmdErr *command.Error
		if errors.As(err, &cmdErr) {
			return true, fmt.Sprintf("`%s` failed: %s", cmdErr.Command, strings.TrimSpace(cmdErr.Output))
		}
		return true, err.Error()
	}
	return false, "the kernel creates dummy links"
}

// row is one line of the image source table.
type row struct{ image, source, ref string }

// table lists where each image of the run comes from: the set's registry (labelled
// "upstream" or "registry") or this machine's builds ("offline").
func (s sources) table(o build.Options) []row {
	kv := kvbuild.ImageNames(o)
	own := []row{
		{"cni-plugins", "offline", network.CNIPluginsImage(o)},
		{"pxe-server", "offline", network.PXEServerImage(o)},
	}
	if !s.registry {
		return append([]row{
			{"kind node", "offline", node.ImageName(o)},
			{"kubevirt manifest", "offline", kvbuild.ManifestPath(o)},
			{"virt-operator", "offline", kv.Operator},
			{"virt-api", "offline", kv.API},
			{"virt-controller", "offline", kv.Controller},
			{"virt-handler", "offline", kv.HandlerNoDummy + " (" + kvbuild.Adaptation + ")"},
			{"virt-launcher", "offline", kv.Launcher},
			{"virt-exportproxy", "offline", kv.ExportProxy},
			{"virt-exportserver", "not built", "runs only for a VirtualMachineExport (go run ./ci/imagebuilder kubevirt-all builds " + kv.ExportServer + ")"},
			{"multus", "offline", network.MultusImage(o)},
		}, own...)
	}
	set, l := s.set, s.label
	m := set.KubeVirt.OperatorManifest
	handler := row{"virt-handler", l, set.KubeVirt.Handler}
	if s.noDummy {
		handler = row{"virt-handler", "offline", kv.HandlerNoDummy + " (" + kvbuild.Adaptation + ": " + s.dummyWhy + ")"}
	}
	return append([]row{
		{"kind node", l, set.KindNode},
		{"kubevirt manifest", l, m.URL + " (sha256 " + m.SHA256 + ")"},
		{"virt-operator", l, set.KubeVirt.Operator},
		{"virt-api", l, set.KubeVirt.API},
		{"virt-controller", l, set.KubeVirt.Controller},
		handler,
		{"virt-launcher", l, set.KubeVirt.Launcher},
		{"virt-exportproxy", l, set.KubeVirt.ExportProxy},
		{"virt-exportserver", l, set.KubeVirt.ExportServer},
		{"multus", l, set.Multus},
	}, own...)
}

// printTable writes the source table, after the line that says why.
func printTable(w io.Writer, s sources, o build.Options) {
	fmt.Fprintf(w, "cluster: image sources: %s\n", s.why)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  IMAGE\tSOURCE\tREFERENCE")
	for _, r := range s.table(o) {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.image, r.source, r.ref)
	}
	tw.Flush()
}

// listImages prints the images of the set in use, one reference per line, as hydrophone's
// --list-images does, for mirroring: the set's with auto or upstream (what auto deploys where
// every reference answers), this machine's builds with offline. It needs neither a cluster
// nor a network.
func listImages(w io.Writer, getenv func(string) string, o build.Options) error {
	r, err := readRequest(getenv)
	if err != nil {
		return err
	}
	var refs []string
	switch {
	case r.mode == modeOffline:
		kv := kvbuild.ImageNames(o)
		refs = append([]string{node.ImageName(o)}, kv.Deployed()...)
		refs = append(refs, network.ImageNames(o)...)
	case r.set == nil:
		return usageError{fmt.Errorf("%s=%s: %w", modeVar, r.mode, r.unusable)}
	default:
		refs = r.set.References()
	}
	_, err = fmt.Fprintln(w, strings.Join(refs, "\n"))
	return err
}

// deployment is what up puts into the cluster, from the sources chosen.
type deployment struct {
	nodeImage string
	// load lists the images built here, which the nodes get with LoadImages; everything else
	// they pull.
	load []string
	// handler is the virt-handler image that runs.
	handler string
	multus  []multus.InstallOption
	// cniPluginsImage, when set, installs the CNI plugins the nodes lack from it (kind's own
	// node image has no bridge, static or tuning).
	cniPluginsImage string
	kubevirt        []kubevirt.Option
}

// prepare builds what this run takes from this machine and says how to deploy the rest.
func prepare(ctx context.Context, s sources, o build.Options) (deployment, error) {
	kv := kvbuild.ImageNames(o)
	if !s.registry {
		d := deployment{nodeImage: node.ImageName(o), handler: kv.HandlerNoDummy,
			kubevirt: []kubevirt.Option{kubevirt.WithOperatorManifestFile(kvbuild.ManifestPath(o))}}
		// Side by side, their compiling one at a time (ci/imagebuilder does the same).
		names, err := build.BuildConcurrently(ctx, o, []build.Target{
			{Name: "node", Build: node.Build}, {Name: "kubevirt", Build: kvbuild.Build}, {Name: "network", Build: network.Build}})
		if err != nil {
			return d, fmt.Errorf("build images: %w", err)
		}
		for _, n := range names[1:] { // the node image is the cluster's, not loaded into it
			d.load = append(d.load, n...)
		}
		return d, nil
	}

	set := s.set
	images := set.KubeVirt.Images
	d := deployment{nodeImage: set.KindNode, handler: images.Handler, cniPluginsImage: network.CNIPluginsImage(o),
		multus: []multus.InstallOption{multus.WithImage(set.Multus), multus.WithSetupImage(network.CNIPluginsImage(o))}}
	own, err := network.BuildOwn(ctx, o)
	if err != nil {
		return d, fmt.Errorf("build network images: %w", err)
	}
	d.load = own
	if s.noDummy {
		// The adapted virt-handler comes out of the whole KubeVirt build (cached by inputs).
		if _, err := kvbuild.Build(ctx, o); err != nil {
			return d, fmt.Errorf("build KubeVirt images for %s: %w", kv.HandlerNoDummy, err)
		}
		d.load = append(d.load, kv.HandlerNoDummy)
		images.Handler, d.handler = kv.HandlerNoDummy, kv.HandlerNoDummy
	}
	manifest, err := set.KubeVirt.OperatorManifest.Fetch(ctx)
	if err != nil {
		return d, fmt.Errorf("KubeVirt operator manifest of %s: %w", set.File, err)
	}
	d.kubevirt = []kubevirt.Option{kubevirt.WithOperatorManifest(manifest), kubevirt.WithImages(images)}
	return d, nil
}
