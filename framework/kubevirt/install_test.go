package kubevirt

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

func crd(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apiextensions.k8s.io/v1")
	u.SetKind("CustomResourceDefinition")
	u.SetName(name)
	return u
}

func kubeVirtObject(t *testing.T, ns, name, version string) *unstructured.Unstructured {
	t.Helper()
	kv := NewKubeVirt(ns, name, Features{})
	kv.Status.ObservedKubeVirtVersion = version
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(kv)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func TestFindKubeVirtTellsAbsentHalfAndInstalledApart(t *testing.T) {
	for _, tc := range []struct {
		name        string
		objects     func(t *testing.T) []runtime.Object
		wantCRD     bool
		wantVersion string
	}{
		{"absent", func(*testing.T) []runtime.Object { return nil }, false, ""},
		{"crd only", func(*testing.T) []runtime.Object { return []runtime.Object{crd(kubeVirtCRD)} }, true, ""},
		{"installed", func(t *testing.T) []runtime.Object {
			return []runtime.Object{crd(kubeVirtCRD), kubeVirtObject(t, "vendor-ns", "vendor-kv", "v1.5.2")}
		}, true, "v1.5.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scheme := runtime.NewScheme()
			dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, map[schema.GroupVersionResource]string{
				crdGVR:      "CustomResourceDefinitionList",
				kubeVirtGVR: "KubeVirtList",
			}, tc.objects(t)...)
			found, err := findKubeVirt(context.Background(), dyn)
			if err != nil {
				t.Fatal(err)
			}
			if found.crd != tc.wantCRD {
				t.Errorf("crd found %t, want %t", found.crd, tc.wantCRD)
			}
			got := ""
			if found.kv != nil {
				got = found.kv.Status.ObservedKubeVirtVersion
				if found.kv.Namespace != "vendor-ns" || found.kv.Name != "vendor-kv" {
					t.Errorf("found %s/%s, want vendor-ns/vendor-kv", found.kv.Namespace, found.kv.Name)
				}
			}
			if got != tc.wantVersion {
				t.Errorf("version %q, want %q", got, tc.wantVersion)
			}
		})
	}
}

func TestImageFailureNamesPodContainerAndImage(t *testing.T) {
	waiting := func(reason string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "c", Image: "pxec.local/x:1",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "m"}}}
	}
	pod := func(init, main []corev1.ContainerStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kubevirt", Name: "p"},
			Status: corev1.PodStatus{InitContainerStatuses: init, ContainerStatuses: main}}
	}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want string
	}{
		{"never pull", pod(nil, []corev1.ContainerStatus{waiting("ErrImageNeverPull")}), "pod kubevirt/p container c: ErrImageNeverPull for image pxec.local/x:1"},
		{"init backoff", pod([]corev1.ContainerStatus{waiting("ImagePullBackOff")}, nil), "ImagePullBackOff for image pxec.local/x:1"},
		{"creating", pod(nil, []corev1.ContainerStatus{waiting("ContainerCreating")}), ""},
		{"crash loop", pod(nil, []corev1.ContainerStatus{waiting("CrashLoopBackOff")}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := imageFailure([]corev1.Pod{tc.pod})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestUnavailableAPIServicesNamesOnlyKubeVirtsWithTheReason(t *testing.T) {
	apiService := func(name, ns string, conds ...map[string]any) unstructured.Unstructured {
		u := unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": name},
		}}
		if ns != "" {
			u.Object["spec"] = map[string]any{"service": map[string]any{"namespace": ns, "name": "virt-api"}}
		}
		list := make([]any, len(conds))
		for i, c := range conds {
			list[i] = c
		}
		u.Object["status"] = map[string]any{"conditions": list}
		return u
	}
	items := []unstructured.Unstructured{
		apiService("v1.subresources.kubevirt.io", "kubevirt", map[string]any{"type": "Available", "status": "False", "message": "bad status: 404"}),
		apiService("v1alpha3.subresources.kubevirt.io", "kubevirt", map[string]any{"type": "Available", "status": "True"}),
		apiService("v1beta1.other.io", "elsewhere", map[string]any{"type": "Available", "status": "False"}),
		apiService("v1.kubevirt.io", ""),
		apiService("v2.subresources.kubevirt.io", "kubevirt"),
	}
	got := strings.Join(unavailableAPIServices(items, "kubevirt"), "; ")
	want := "v1.subresources.kubevirt.io: bad status: 404; v2.subresources.kubevirt.io: no Available condition yet"
	if got != want {
		t.Errorf("unavailable %q, want %q", got, want)
	}
}
