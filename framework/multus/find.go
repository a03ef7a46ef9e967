package multus

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DaemonSets returns the DaemonSets, in any namespace, whose name says Multus (a vendor's or
// ours), sorted by namespace and name: how Install, the preflight and the results bundle find
// a cluster's Multus whatever its distribution calls it.
func DaemonSets(ctx context.Context, kube kubernetes.Interface) ([]appsv1.DaemonSet, error) {
	list, err := kube.AppsV1().DaemonSets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list DaemonSets: %w", err)
	}
	var found []appsv1.DaemonSet
	for _, ds := range list.Items {
		if strings.Contains(ds.Name, "multus") {
			found = append(found, ds)
		}
	}
	sort.Slice(found, func(i, j int) bool {
		a, b := found[i], found[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	return found, nil
}
