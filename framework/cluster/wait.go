package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// waitReady polls until every node and every kube-system pod is Ready; on timeout the error
// lists what was still not Ready, which is where diagnosis starts.
func waitReady(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var pending []string
	for {
		pending, err = notReady(ctx, client)
		if err == nil && len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for cluster ready: %w (last error: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("wait for cluster ready: %w; not ready: %s", ctx.Err(), strings.Join(pending, ", "))
		case <-time.After(2 * time.Second):
		}
	}
}

// notReady names the nodes and kube-system pods that are not Ready (none when the list is empty).
func notReady(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	pods, err := client.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list kube-system pods: %w", err)
	}
	return pendingNames(nodes.Items, pods.Items), nil
}

// pendingNames lists not-Ready nodes as node/<name> and not-Ready pods as pod/<name> (<phase>).
// No nodes at all counts as not ready.
func pendingNames(nodes []corev1.Node, pods []corev1.Pod) []string {
	var out []string
	if len(nodes) == 0 {
		out = append(out, "no nodes registered")
	}
	for _, n := range nodes {
		if !nodeReady(n) {
			out = append(out, "node/"+n.Name)
		}
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if !podReady(p) {
			out = append(out, fmt.Sprintf("pod/%s (%s)", p.Name, p.Status.Phase))
		}
	}
	sort.Strings(out)
	return out
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// nodeNames lists the cluster's node names.
func nodeNames(ctx context.Context, cfg *rest.Config) ([]string, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	return names, nil
}
