package kubevirt

import (
	"strings"
	"testing"
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

func TestParseManifestKeepsOrderAndSkipsEmptyDocuments(t *testing.T) {
	objs, err := parseManifest([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := "Namespace/kubevirt CustomResourceDefinition/kubevirts.kubevirt.io Deployment/virt-operator"
	if strings.Join(got, " ") != want {
		t.Errorf("objects %v, want %s", got, want)
	}
	if err := checkOperatorManifest(objs, "kubevirt"); err != nil {
		t.Errorf("check: %v", err)
	}
}

func TestParseManifestNamesTheBadDocument(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"no apiVersion", "kind: Namespace\nmetadata: {name: x}\n", "document 1: no apiVersion"},
		{"no kind", "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n", "document 2 (v1): no kind"},
		{"no name", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "document 1 (Namespace): no metadata.name"},
		{"not yaml", "apiVersion: [v1\n", "document 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseManifest([]byte(tc.manifest))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
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
			objs, err := parseManifest([]byte(tc.manifest))
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
