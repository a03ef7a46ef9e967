package kubevirt

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
)

// operatorManifest is the part of KubeVirt's release manifest that WithImages changes: the
// virt-operator Deployment as the manifest templator writes it.
const operatorManifest = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-operator
  namespace: kubevirt
spec:
  template:
    spec:
      containers:
      - name: virt-operator
        image: quay.io/kubevirt/virt-operator:v1.9.0
        env:
        - name: VIRT_OPERATOR_IMAGE
          value: quay.io/kubevirt/virt-operator:v1.9.0
        - name: WATCH_NAMESPACE
          valueFrom:
            fieldRef: {fieldPath: "metadata.annotations['olm.targetNamespaces']"}
        - name: KUBEVIRT_VERSION
          value: v1.9.0
        - name: VIRT_HANDLER_IMAGE
          valueFrom:
            configMapKeyRef: {name: elsewhere, key: handler}
`

func operatorEnv(t *testing.T, u *unstructured.Unstructured) (image string, env map[string]any) {
	t.Helper()
	containers, _, err := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if err != nil || len(containers) != 1 {
		t.Fatalf("containers %v: %v", containers, err)
	}
	c := containers[0].(map[string]any)
	env = map[string]any{}
	for _, e := range c["env"].([]any) {
		em := e.(map[string]any)
		if v, ok := em["value"]; ok {
			env[em["name"].(string)] = v
		} else {
			env[em["name"].(string)] = em["valueFrom"]
		}
	}
	return c["image"].(string), env
}

func TestWithImagesPointsTheOperatorAtEachComponentsImage(t *testing.T) {
	objs, err := apply.Decode([]byte(operatorManifest))
	if err != nil {
		t.Fatal(err)
	}
	const reg = "127.0.0.1:5000/kubevirt/"
	const dig = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	images := Images{
		Operator:     reg + "virt-operator:v1.9.0" + dig,
		API:          reg + "virt-api:v1.9.0" + dig,
		Controller:   reg + "virt-controller:v1.9.0" + dig,
		Handler:      "pxec.local/kubevirt/virt-handler:v1.9.0-pxec-nodummy",
		Launcher:     reg + "virt-launcher:v1.9.0" + dig,
		ExportProxy:  reg + "virt-exportproxy:v1.9.0" + dig,
		ExportServer: reg + "virt-exportserver:v1.9.0" + dig,
	}
	var o options
	if err := WithImages(images).apply(&o); err != nil {
		t.Fatal(err)
	}
	if err := SetOperatorImages(objs, o.images); err != nil {
		t.Fatal(err)
	}
	image, env := operatorEnv(t, objs[0])
	if image != images.Operator {
		t.Errorf("container image %q, want %q", image, images.Operator)
	}
	for _, f := range images.Fields() {
		want := *f.Ref
		if f.Name == "operator" {
			// By digest alone: the operator reads its version from what follows a ':'.
			want = reg + "virt-operator" + dig
		}
		if env[f.Env] != want {
			t.Errorf("%s = %v, want %q", f.Env, env[f.Env], want)
		}
	}
	// What the images do not name stays as the manifest has it.
	if env["KUBEVIRT_VERSION"] != "v1.9.0" {
		t.Errorf("KUBEVIRT_VERSION = %v, want v1.9.0", env["KUBEVIRT_VERSION"])
	}
	if _, ok := env["WATCH_NAMESPACE"].(map[string]any); !ok {
		t.Errorf("WATCH_NAMESPACE = %v, want its valueFrom kept", env["WATCH_NAMESPACE"])
	}
}

func TestWithImagesChangesOnlyTheComponentsItNames(t *testing.T) {
	objs, err := apply.Decode([]byte(operatorManifest))
	if err != nil {
		t.Fatal(err)
	}
	const handler = "pxec.local/kubevirt/virt-handler:v1.9.0-pxec-nodummy"
	if err := SetOperatorImages(objs, Images{Handler: handler}); err != nil {
		t.Fatal(err)
	}
	image, env := operatorEnv(t, objs[0])
	if image != "quay.io/kubevirt/virt-operator:v1.9.0" {
		t.Errorf("container image %q changed", image)
	}
	if env["VIRT_HANDLER_IMAGE"] != handler {
		t.Errorf("VIRT_HANDLER_IMAGE = %v, want %q (a valueFrom is replaced)", env["VIRT_HANDLER_IMAGE"], handler)
	}
	if _, ok := env["VIRT_API_IMAGE"]; ok {
		t.Errorf("VIRT_API_IMAGE set although no API image was named")
	}
}

func TestWithImagesRefusesWhatIsNotAnImageReference(t *testing.T) {
	var o options
	err := WithImages(Images{Launcher: "quay.io/kubevirt/virt-launcher:v1.9.0 extra"}).apply(&o)
	if err == nil || !strings.Contains(err.Error(), `image launcher "quay.io/kubevirt/virt-launcher:v1.9.0 extra"`) {
		t.Errorf("error %v, want one naming the launcher image and its value", err)
	}
}

func TestSetOperatorImagesNeedsTheOperatorDeployment(t *testing.T) {
	objs, err := apply.Decode([]byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: kubevirt}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetOperatorImages(objs, Images{API: "a/b:c"}); err == nil || !strings.Contains(err.Error(), "no virt-operator Deployment") {
		t.Errorf("error %v, want no virt-operator Deployment", err)
	}
}
