package multus

import (
	"context"
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestStopAndRestoreTouchOnlyTheirNodeSelector: stopping Multus adds one node selector entry
// and restoring removes it, leaving the operator's own selector as it was.
func TestStopAndRestoreTouchOnlyTheirNodeSelector(t *testing.T) {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-multus-ds", Namespace: "kube-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "multus"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/os": "linux"}}},
		},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberReady: 2},
	}
	kube := fake.NewSimpleClientset(ds)
	ctx := context.Background()
	stopped, err := Stop(ctx, kube, *ds, 5*time.Second)
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	got, _ := kube.AppsV1().DaemonSets("kube-system").Get(ctx, ds.Name, metav1.GetOptions{})
	if want := map[string]string{"kubernetes.io/os": "linux", StoppedLabel: "true"}; !reflect.DeepEqual(got.Spec.Template.Spec.NodeSelector, want) {
		t.Errorf("stopped: node selector %v, want %v", got.Spec.Template.Spec.NodeSelector, want)
	}
	if err := stopped.Restore(ctx, 5*time.Second); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, _ = kube.AppsV1().DaemonSets("kube-system").Get(ctx, ds.Name, metav1.GetOptions{})
	if want := map[string]string{"kubernetes.io/os": "linux"}; !reflect.DeepEqual(got.Spec.Template.Spec.NodeSelector, want) {
		t.Errorf("restored: node selector %v, want %v", got.Spec.Template.Spec.NodeSelector, want)
	}
}
