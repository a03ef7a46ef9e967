package podstatus

import (
	"context"
	"fmt"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/pxe-conformance/pxe-conformance/framework/multus"
)

// Terminated says why the pod has stopped, or why one of its containers cannot start (an image
// that cannot be pulled, a container that cannot be created); "" when neither.
func Terminated(p *corev1.Pod) string {
	for _, st := range p.Status.ContainerStatuses {
		if t := st.State.Terminated; t != nil {
			return fmt.Sprintf("container %s exited %d (%s)", st.Name, t.ExitCode, t.Reason)
		}
		if w := st.State.Waiting; w != nil && cannotStart[w.Reason] {
			return fmt.Sprintf("container %s waiting: %s: %s", st.Name, w.Reason, w.Message)
		}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		if p.Status.Message == "" {
			return fmt.Sprintf("phase %s", p.Status.Phase)
		}
		return fmt.Sprintf("phase %s: %s", p.Status.Phase, p.Status.Message)
	}
	return ""
}

// cannotStart are the kubelet's waiting reasons for a container that will not start by itself.
var cannotStart = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "ErrImageNeverPull": true, "CreateContainerError": true,
}

// NetworkBlocked says why the pod's networks are not, and will not be, as it asked: while it is
// Pending, a sandbox whose network a CNI plugin could not set up (a plugin missing on the node,
// Multus failing: the FailedCreatePodSandBox event quoted; the kubelet retries it, minutes later
// and in vain); once a container has started, the attachments Multus did not make (Multus
// stopped: the node's default network alone set the pod up). "" when neither.
func NetworkBlocked(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodPending && !started(p) {
		if ev := sandboxFailure(ctx, kube, p); ev != "" {
			return "its network could not be set up: " + ev
		}
		return ""
	}
	if !started(p) {
		return ""
	}
	missing, err := multus.MissingAttachments(p)
	switch {
	case err != nil:
		return err.Error()
	case len(missing) > 0:
		return multus.NotAttached(ctx, kube, missing)
	}
	return ""
}

// started reports whether one of the pod's containers has started: its sandbox, networks
// included, is then set up.
func started(p *corev1.Pod) bool {
	for _, st := range p.Status.ContainerStatuses {
		if st.State.Running != nil || st.State.Terminated != nil {
			return true
		}
	}
	return false
}

// sandboxFailure returns the message of the latest FailedCreatePodSandBox event of p (this pod,
// not an earlier one of the same name) that is a verdict, or "". A plugin's API request that
// timed out (Multus looking the pod up while the API server is slow: the full run met it once)
// is none: the kubelet's retry cures it.
func sandboxFailure(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) string {
	events, err := kube.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": p.Name, "reason": "FailedCreatePodSandBox"}.String()})
	if err != nil {
		return ""
	}
	var latest *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if e.InvolvedObject.UID != p.UID || e.Reason != "FailedCreatePodSandBox" || apiTimeout.MatchString(e.Message) {
			continue
		}
		if latest == nil || lastSeen(e).After(lastSeen(latest)) {
			latest = e
		}
	}
	if latest == nil {
		return ""
	}
	return latest.Message
}

// apiTimeout matches a plugin's request to the API server that timed out, as Go's HTTP client
// words it: `Get "https://10.96.0.1:443/api/v1/...": context deadline exceeded`.
var apiTimeout = regexp.MustCompile(`"https?://[^"]+/apis?/[^"]*": [^"]*(deadline exceeded|timeout|Timeout)`)

// lastSeen is when an event last happened, whichever of its fields the recorder set.
func lastSeen(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
