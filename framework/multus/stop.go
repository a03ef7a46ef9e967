package multus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
)

// StoppedLabel is the node label that Stop's node selector asks for and no node carries.
const StoppedLabel = "pxe-conformance.io/multus-stopped"

// Stopped is a Multus DaemonSet that Stop keeps off every node; Restore puts it back.
type Stopped struct {
	kube kubernetes.Interface
	ref  apply.Ref
}

// Stop stops the Multus DaemonSet ds as an operator who takes Multus away would, for the fault
// specs (a cluster the run owns): a node selector that no node matches (StoppedLabel) makes
// its pods end, and Stop waits until none is left. Nothing else of the DaemonSet changes. The
// returned Stopped, also returned with an error once the selector is in place, restores it.
func Stop(ctx context.Context, kube kubernetes.Interface, ds appsv1.DaemonSet, timeout time.Duration) (*Stopped, error) {
	ref := apply.Ref{Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name}
	patch, err := selectorPatch("true")
	if err != nil {
		return nil, err
	}
	if _, err := kube.AppsV1().DaemonSets(ds.Namespace).Patch(ctx, ds.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: apply.FieldManager}); err != nil {
		return nil, fmt.Errorf("stop Multus: node selector %s on %s: %w", StoppedLabel, ref, err)
	}
	s := &Stopped{kube: kube, ref: ref}
	selector := metav1.FormatLabelSelector(ds.Spec.Selector)
	left := -1
	err = wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		left = len(pods.Items)
		return left == 0, nil
	})
	if err != nil {
		return s, fmt.Errorf("stop Multus: %d pod(s) of %s still there: %w", left, ref, err)
	}
	return s, nil
}

// Restore removes Stop's node selector and waits until the DaemonSet's pods are ready again
// on every node, Multus's config written.
func (s *Stopped) Restore(ctx context.Context, timeout time.Duration) error {
	patch, err := selectorPatch("")
	if err != nil {
		return err
	}
	if _, err := s.kube.AppsV1().DaemonSets(s.ref.Namespace).Patch(ctx, s.ref.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: apply.FieldManager}); err != nil {
		return fmt.Errorf("restore Multus: remove node selector %s from %s: %w", StoppedLabel, s.ref, err)
	}
	if err := waitDaemonSet(ctx, s.kube, s.ref, timeout); err != nil {
		return fmt.Errorf("restore Multus: %w", err)
	}
	return nil
}

// selectorPatch sets StoppedLabel in the pod template's node selector to value, or removes it
// when value is empty.
func selectorPatch(value string) ([]byte, error) {
	var v any
	if value != "" {
		v = value
	}
	return json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"nodeSelector": map[string]any{StoppedLabel: v}}}}})
}
