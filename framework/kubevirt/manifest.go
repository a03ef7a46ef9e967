package kubevirt

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// parseManifest splits a multi-document YAML manifest into objects, in order. Empty documents
// are skipped; a document without apiVersion, kind or metadata.name is an error naming its
// position.
func parseManifest(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		switch {
		case u.GetAPIVersion() == "":
			return nil, fmt.Errorf("manifest document %d: no apiVersion", doc)
		case u.GetKind() == "":
			return nil, fmt.Errorf("manifest document %d (%s): no kind", doc, u.GetAPIVersion())
		case u.GetName() == "":
			return nil, fmt.Errorf("manifest document %d (%s): no metadata.name", doc, u.GetKind())
		}
		objs = append(objs, u)
	}
}

// checkOperatorManifest makes sure the manifest is a KubeVirt operator manifest for namespace:
// it must hold the virt-operator Deployment there and the KubeVirt CRD.
func checkOperatorManifest(objs []*unstructured.Unstructured, namespace string) error {
	var operator, crd bool
	for _, u := range objs {
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == "virt-operator":
			if u.GetNamespace() != namespace {
				return fmt.Errorf("virt-operator Deployment is in namespace %q, KubeVirt namespace is %q", u.GetNamespace(), namespace)
			}
			operator = true
		case u.GetKind() == "CustomResourceDefinition" && u.GetName() == kubeVirtCRD:
			crd = true
		}
	}
	if !operator {
		return fmt.Errorf("no virt-operator Deployment")
	}
	if !crd {
		return fmt.Errorf("no CustomResourceDefinition %s", kubeVirtCRD)
	}
	return nil
}
