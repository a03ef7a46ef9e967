package kubevirt

import (
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
)

const testManifest = `---
apiVersion: v1
kind: Namespace
metadata:
  name: kubevirt
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kubevirts.kubevirt.io
---
# a comment-only document
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: virt-operator
  namespace: kubevirt
`

func TestCheckOperatorManifestAcceptsKubeVirtsOperator(t *testing.T) {
	objs, err := apply.Decode([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkOperatorManifest(objs, "kubevirt"); err != nil {
		t.Errorf("check: %v", err)
	}
}

func TestCheckOperatorManifestRejectsWhatIsNotKubeVirtsOperator(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, namespace, want string
	}{
		{"no operator", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: kubevirts.kubevirt.io}\n", "kubevirt", "no virt-operator Deployment"},
		{"no CRD", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: virt-operator, namespace: kubevirt}\n", "kubevirt", "no CustomResourceDefinition kubevirts.kubevirt.io"},
		{"other namespace", testManifest, "elsewhere", `namespace "kubevirt", KubeVirt namespace is "elsewhere"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := apply.Decode([]byte(tc.manifest))
			if err != nil {
				t.Fatal(err)
			}
			err = checkOperatorManifest(objs, tc.namespace)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
