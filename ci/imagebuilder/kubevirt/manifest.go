package kubevirt

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/framework/kubevirt"
)

// buildManifest renders the operator manifest with KubeVirt's own manifest-templator, in the
// two passes of KubeVirt's hack/build-manifests.sh: first the generated parts (CRD, RBAC) are
// included, then the variables are filled in with our image prefix, tag and pull policy. The
// virt-operator Deployment then gets VIRT_HANDLER_IMAGE, the operator's own way to deploy
// another virt-handler image: the templator's --virt-handler-image flag does not reach the
// Deployment in v1.9.0 (it renders the Deployment before it reads that flag).
func buildManifest(ctx context.Context, o build.Options, src source, bins binaries, names Images) error {
	out := ManifestPath(o)
	vars := []string{
		"--process-vars",
		"--namespace=" + Namespace,
		"--container-prefix=" + ContainerPrefix(o),
		"--container-tag=" + Version,
		"--image-pull-policy=IfNotPresent",
		"--verbosity=2",
		// The templator reads the logo even for manifests that do not use it.
		"--kubevirt-logo-path=" + filepath.Join(src.Dir, "assets", "kubevirt_logo.png"),
	}
	inputs := build.Hash(append([]string{bins.Inputs, handlerImageEnv, names.HandlerNoDummy, "env-2"}, vars...)...)
	if got, err := os.ReadFile(out + ".inputs"); err == nil && !o.Force && strings.TrimSpace(string(got)) == inputs {
		if _, err := os.Stat(out); err == nil {
			o.Progress.Skip("kubevirt operator manifest", "up to date")
			return nil
		}
	}
	return o.Progress.Step("kubevirt operator manifest (manifest-templator)", func() error {
		templator := bins.Path("manifest-templator")
		files := exec.CommandContext(ctx, templator, "--process-files",
			"--generated-manifests-dir="+filepath.Join(src.Dir, "manifests", "generated")+"/",
			"--input-file="+filepath.Join(src.Dir, "manifests", "release", "kubevirt-operator.yaml.in"))
		withFiles, err := build.Output(ctx, files)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		tmp := out + ".in"
		if err := os.WriteFile(tmp, withFiles, 0o644); err != nil {
			return err
		}
		defer os.Remove(tmp)
		manifest, err := build.Output(ctx, exec.CommandContext(ctx, templator, append(vars, "--input-file="+tmp)...))
		if err != nil {
			return err
		}
		if manifest, err = setHandlerImage(manifest, names.HandlerNoDummy); err != nil {
			return fmt.Errorf("manifest from %s: %w", templator, err)
		}
		if err := checkManifest(manifest, names); err != nil {
			return fmt.Errorf("manifest from %s: %w", templator, err)
		}
		if err := os.WriteFile(out, manifest, 0o644); err != nil {
			return err
		}
		return os.WriteFile(out+".inputs", []byte(inputs+"\n"), 0o644)
	})
}

// checkManifest makes sure the templator honoured the flags: a manifest that still names an
// upstream registry would make the cluster try to pull.
func checkManifest(manifest []byte, names Images) error {
	text := string(manifest)
	for _, want := range []string{names.Operator, names.HandlerNoDummy, "imagePullPolicy: IfNotPresent"} {
		if !strings.Contains(text, want) {
			return fmt.Errorf("%q not found", want)
		}
	}
	if strings.Contains(text, "quay.io/") {
		return fmt.Errorf("still names an image on quay.io")
	}
	return nil
}

// handlerImageEnv is the virt-operator variable that names the virt-handler image.
const handlerImageEnv = "VIRT_HANDLER_IMAGE"

// setHandlerImage makes the manifest's virt-operator deploy virt-handler from image
// (framework/kubevirt.SetOperatorImages). Only the operator's document is rewritten; the others
// stay byte for byte.
func setHandlerImage(manifest []byte, image string) ([]byte, error) {
	docs := splitDocuments(string(manifest))
	for i, doc := range docs {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i+1, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if obj == nil || u.GetKind() != "Deployment" || u.GetName() != "virt-operator" {
			continue
		}
		if err := kubevirt.SetOperatorImages([]*unstructured.Unstructured{u}, kubevirt.Images{Handler: image}); err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		docs[i] = string(out)
		return []byte(joinDocuments(docs)), nil
	}
	return nil, fmt.Errorf("no virt-operator Deployment")
}

// splitDocuments splits YAML text at its "---" separator lines.
func splitDocuments(text string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(text, "\n") {
		if strings.TrimRight(line, "\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

func joinDocuments(docs []string) string {
	var b strings.Builder
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(d)
		if d != "" && !strings.HasSuffix(d, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}
