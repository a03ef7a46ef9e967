package kubevirt

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kvv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubecli"

	"github.com/pxe-conformance/pxe-conformance/framework/podstatus"
)

// syncFailureGrace is how long a VMI may report the same failure to create its domain before
// WaitVMIRunning gives up: such a failure (missing firmware, a refused device) repeats until
// the VMI is deleted, while a transient one clears within seconds.
const syncFailureGrace = 45 * time.Second

// WaitVMIRunning polls the VMI until its phase is Running and returns it. It fails at once on
// a terminal phase or on what podstatus says of its virt-launcher pod (a container that cannot
// start, a sandbox whose network cannot be set up, an attachment Multus did not make), and
// after syncFailureGrace when virt-launcher keeps failing to create the domain with one
// message; every error names the VMI, and the phase and conditions or the pod.
func WaitVMIRunning(ctx context.Context, virt kubecli.KubevirtClient, ns, name string, timeout time.Duration) (*kvv1.VirtualMachineInstance, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *kvv1.VirtualMachineInstance
	var stuck syncFailure
	for {
		got, err := virt.VirtualMachineInstance(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = got
			switch got.Status.Phase {
			case kvv1.Running:
				return got, nil
			case kvv1.Failed, kvv1.Succeeded:
				return got, fmt.Errorf("VMI %s/%s reached phase %s before Running: %s", ns, name, got.Status.Phase, Conditions(got))
			}
			if err := launcherBlocked(ctx, virt, got); err != nil {
				return got, err
			}
			if msg, d := stuck.observe(got, time.Now()); d >= syncFailureGrace {
				return got, fmt.Errorf("VMI %s/%s cannot start: virt-launcher has failed to create the domain for %s: %s", ns, name, d.Round(time.Second), msg)
			}
		}
		select {
		case <-ctx.Done():
			phase, conds := kvv1.VirtualMachineInstancePhase("unknown"), "not seen"
			if last != nil {
				phase, conds = last.Status.Phase, Conditions(last)
			}
			return last, fmt.Errorf("VMI %s/%s not Running within %s: phase %s; %s", ns, name, timeout, phase, conds)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// launcherBlocked fails when a virt-launcher pod of v will never run the VMI as asked.
func launcherBlocked(ctx context.Context, kube kubernetes.Interface, v *kvv1.VirtualMachineInstance) error {
	pods, err := kube.CoreV1().Pods(v.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: kvv1.CreatedByLabel + "=" + string(v.UID)})
	if err != nil {
		return nil // a read that fails says nothing of the pod: the next poll asks again
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		why := podstatus.Terminated(p)
		if why == "" {
			why = podstatus.NetworkBlocked(ctx, kube, p)
		}
		if why != "" {
			return fmt.Errorf("VMI %s/%s cannot start: its virt-launcher pod %s on node %q: %s", v.Namespace, v.Name, p.Name, p.Spec.NodeName, why)
		}
	}
	return nil
}

// syncFailure tracks how long a VMI's Synchronized condition has been False with one message.
type syncFailure struct {
	msg   string
	since time.Time
}

// observe returns the current failure message and how long it has persisted, or "" and 0.
func (f *syncFailure) observe(v *kvv1.VirtualMachineInstance, now time.Time) (string, time.Duration) {
	for _, c := range v.Status.Conditions {
		if c.Type == kvv1.VirtualMachineInstanceSynchronized && c.Status == corev1.ConditionFalse && c.Message != "" {
			if c.Message != f.msg {
				f.msg, f.since = c.Message, now
			}
			return f.msg, now.Sub(f.since)
		}
	}
	f.msg = ""
	return "", 0
}

// Conditions renders a VMI's conditions for a message.
func Conditions(v *kvv1.VirtualMachineInstance) string {
	var s []string
	for _, c := range v.Status.Conditions {
		s = append(s, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	if len(s) == 0 {
		return "no conditions"
	}
	return strings.Join(s, "; ")
}
