package kubevirt

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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
