package kubevirt

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Images names the image of each KubeVirt component Install deploys. The JSON names are the
// keys of an image set file (framework/imageset).
type Images struct {
	Operator     string `json:"operator"`
	API          string `json:"api"`
	Controller   string `json:"controller"`
	Handler      string `json:"handler"`
	Launcher     string `json:"launcher"`
	ExportProxy  string `json:"exportProxy"`
	ExportServer string `json:"exportServer"`
}

// Fields lists each image with its JSON name, in the order KubeVirt's operator starts them.
func (i *Images) Fields() []ImageField {
	return []ImageField{
		{"operator", "VIRT_OPERATOR_IMAGE", &i.Operator},
		{"api", "VIRT_API_IMAGE", &i.API},
		{"controller", "VIRT_CONTROLLER_IMAGE", &i.Controller},
		{"handler", "VIRT_HANDLER_IMAGE", &i.Handler},
		{"launcher", "VIRT_LAUNCHER_IMAGE", &i.Launcher},
		{"exportProxy", "VIRT_EXPORTPROXY_IMAGE", &i.ExportProxy},
		{"exportServer", "VIRT_EXPORTSERVER_IMAGE", &i.ExportServer},
	}
}

// ImageField is one component's image in Images.
type ImageField struct {
	// Name is the JSON name ("api").
	Name string
	// Env is the virt-operator variable that names the image (virt-operator's
	// pkg/virt-operator/util: VirtApiImageEnvName and its siblings).
	Env string
	// Ref points at the image reference in Images.
	Ref *string
}

// WithImages runs virt-operator from images.Operator and makes it deploy each other component
// from the image named here, through the operator's own variables (VIRT_API_IMAGE, ...,
// VIRT_HANDLER_IMAGE), which take precedence over the images it would derive from its own
// image's registry and tag. That is how images pinned by digest, a mirror, or one component of
// our own build (virt-handler on a kernel without dummy links) are deployed. Empty fields keep
// what the manifest says.
func WithImages(images Images) Option {
	return optionFunc(func(o *options) error {
		for _, f := range images.Fields() {
			if *f.Ref == "" {
				continue
			}
			if _, err := name.ParseReference(*f.Ref); err != nil {
				return fmt.Errorf("image %s %q: %w", f.Name, *f.Ref, err)
			}
		}
		o.images = images
		return nil
	})
}

// SetOperatorImages points the virt-operator Deployment among objs (a decoded operator
// manifest) at images, as WithImages does at install: the container's image and
// VIRT_OPERATOR_IMAGE for the operator, one variable per other component; empty fields are
// left alone.
func SetOperatorImages(objs []*unstructured.Unstructured, images Images) error {
	for _, u := range objs {
		if u.GetKind() != "Deployment" || u.GetName() != "virt-operator" {
			continue
		}
		containers, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		if err != nil {
			return fmt.Errorf("virt-operator Deployment: %w", err)
		}
		found := false
		for _, c := range containers {
			cm, ok := c.(map[string]any)
			if !ok || cm["name"] != "virt-operator" {
				continue
			}
			found = true
			if images.Operator != "" {
				cm["image"] = images.Operator
			}
			env, _ := cm["env"].([]any)
			for _, f := range images.Fields() {
				switch {
				case *f.Ref == "":
				case f.Name == "operator":
					env = setEnv(env, f.Env, operatorEnvImage(*f.Ref))
				default:
					env = setEnv(env, f.Env, *f.Ref)
				}
			}
			cm["env"] = env
		}
		if !found {
			return fmt.Errorf("virt-operator Deployment has no container virt-operator")
		}
		return unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
	}
	return fmt.Errorf("no virt-operator Deployment")
}

// setEnv sets the variable name to value in a container's env list, replacing a value or a
// valueFrom of that name.
func setEnv(env []any, name, value string) []any {
	for _, e := range env {
		if em, ok := e.(map[string]any); ok && em["name"] == name {
			em["value"] = value
			delete(em, "valueFrom")
			return env
		}
	}
	return append(env, map[string]any{"name": name, "value": value})
}

// operatorEnvImage is the operator's image as VIRT_OPERATOR_IMAGE tells it to the operator,
// which takes its version from that reference: after a ':', everything up to the end, so
// "repo:v1.9.0@sha256:..." would make the version "v1.9.0@sha256:..." (and the images it
// derives for components not named here nonsense); by digest alone it takes KUBEVIRT_VERSION
// from the manifest (pkg/virt-operator/util/config.go, getTag). The pod still runs ref itself.
func operatorEnvImage(ref string) string {
	d, err := name.NewDigest(ref)
	if err != nil {
		return ref
	}
	return d.Context().Name() + "@" + d.DigestStr()
}
