package multus

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// The Network Plumbing Working Group's pod annotations: the attachments a pod asks for, and
// the ones Multus made, which it writes while it sets the pod's networks up.
const (
	NetworksAnnotation      = "k8s.v1.cni.cncf.io/networks"
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
)

// attachment is one network a pod asks for or got: namespace/name and, when named, the
// interface in the pod.
type attachment struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
}

func (a attachment) String() string {
	if a.Interface == "" {
		return a.Name
	}
	return fmt.Sprintf("%s (interface %s)", a.Name, a.Interface)
}

// MissingAttachments lists the attachments pod asks for (NetworksAnnotation) that its
// NetworkStatusAnnotation does not list, as namespace/name (interface ...). Ask it once the
// pod's sandbox is up (a container has started): Multus has then made every attachment it
// will, and one that is missing means Multus did not set the pod's networks up.
func MissingAttachments(pod *corev1.Pod) ([]string, error) {
	asked, err := requested(pod)
	if err != nil || len(asked) == 0 {
		return nil, err
	}
	var got []attachment
	if s := pod.Annotations[NetworkStatusAnnotation]; s != "" {
		if err := json.Unmarshal([]byte(s), &got); err != nil {
			return nil, fmt.Errorf("pod %s/%s: annotation %s %q: %w", pod.Namespace, pod.Name, NetworkStatusAnnotation, s, err)
		}
	}
	var missing []string
	for _, a := range asked {
		if !slices.ContainsFunc(got, func(g attachment) bool {
			return g.Name == a.Name && (a.Interface == "" || g.Interface == a.Interface)
		}) {
			missing = append(missing, a.String())
		}
	}
	return missing, nil
}

// requested reads a pod's NetworksAnnotation, in its JSON form or its short form
// ("name,namespace/name@interface"), with namespaces made explicit.
func requested(pod *corev1.Pod) ([]attachment, error) {
	s := strings.TrimSpace(pod.Annotations[NetworksAnnotation])
	if s == "" {
		return nil, nil
	}
	var list []attachment
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return nil, fmt.Errorf("pod %s/%s: annotation %s %q: %w", pod.Namespace, pod.Name, NetworksAnnotation, s, err)
		}
	} else {
		for _, item := range strings.Split(s, ",") {
			var a attachment
			ref, iface, _ := strings.Cut(strings.TrimSpace(item), "@")
			a.Interface = iface
			if ns, name, ok := strings.Cut(ref, "/"); ok {
				a.Namespace, a.Name = ns, name
			} else {
				a.Name = ref
			}
			list = append(list, a)
		}
	}
	for i := range list {
		if list[i].Namespace == "" {
			list[i].Namespace = pod.Namespace
		}
		list[i].Name = list[i].Namespace + "/" + list[i].Name
	}
	return list, nil
}

// Readiness says how many of a Multus DaemonSet's pods are ready, as the preflight and a
// failure's diagnosis print it: "kube-system/multus 2 of 2 pods ready".
func Readiness(ds appsv1.DaemonSet) string {
	return fmt.Sprintf("%s/%s %d of %d pods ready", ds.Namespace, ds.Name, ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
}

// NotAttached explains a started pod's missing attachments: Multus did not set its networks
// up, with the state of the cluster's Multus DaemonSets, which is where to look.
func NotAttached(ctx context.Context, kube kubernetes.Interface, missing []string) string {
	why := fmt.Sprintf("it runs without its network attachment %s: Multus did not set up the pod's networks", strings.Join(missing, " and "))
	sets, err := DaemonSets(ctx, kube)
	switch {
	case err != nil:
		return fmt.Sprintf("%s (the Multus DaemonSets cannot be read: %v)", why, err)
	case len(sets) == 0:
		return why + "; no Multus DaemonSet runs in the cluster"
	}
	var states []string
	for _, ds := range sets {
		states = append(states, Readiness(ds))
	}
	return fmt.Sprintf("%s; Multus DaemonSet %s", why, strings.Join(states, "; "))
}
