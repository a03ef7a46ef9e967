package vmiguest

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	kvv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubecli"

	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
)

// The milestones between a VMI's creation and Running, as its watches see them.
const (
	StepLauncherCreated     procedure.Step = "launcher-created"     // virt-launcher's pod exists
	StepLauncherScheduled   procedure.Step = "launcher-scheduled"   // the pod is bound to a node
	StepLauncherInitialized procedure.Step = "launcher-initialized" // its init containers are done
	StepLauncherRunning     procedure.Step = "launcher-running"     // its containers run
	StepVMIScheduled        procedure.Step = "vmi-scheduled"        // VMI phase Scheduled: the domain is being defined
)

// trace watches the VMI and its virt-launcher pod from before the VMI's creation and marks
// each milestone on timings when the watch reports it (API server timestamps have only
// seconds), so that a report can say where the time to Running goes.
type trace struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startTrace starts the watches; stop ends them. Failing to watch only loses the breakdown.
func startTrace(ctx context.Context, virt kubecli.KubevirtClient, ns, name string, t *procedure.Timings) *trace {
	ctx, cancel := context.WithCancel(ctx)
	tr := &trace{cancel: cancel}
	if t == nil {
		return tr
	}
	if w, err := virt.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: kvv1.AppLabel + "=virt-launcher"}); err == nil {
		tr.follow(w, func(obj any) {
			p, ok := obj.(*corev1.Pod)
			if !ok {
				return
			}
			t.Mark(StepLauncherCreated)
			for _, c := range p.Status.Conditions {
				if c.Status != corev1.ConditionTrue {
					continue
				}
				switch c.Type {
				case corev1.PodScheduled:
					t.Mark(StepLauncherScheduled)
				case corev1.PodInitialized:
					t.Mark(StepLauncherInitialized)
				}
			}
			if p.Status.Phase == corev1.PodRunning {
				t.Mark(StepLauncherRunning)
			}
		})
	}
	if w, err := virt.VirtualMachineInstance(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}); err == nil {
		tr.follow(w, func(obj any) {
			if v, ok := obj.(*kvv1.VirtualMachineInstance); ok && v.Status.Phase == kvv1.Scheduled {
				t.Mark(StepVMIScheduled)
			}
		})
	}
	return tr
}

func (tr *trace) follow(w watch.Interface, see func(any)) {
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		defer w.Stop()
		for ev := range w.ResultChan() {
			see(ev.Object)
		}
	}()
}

// stop ends the watches and waits for them.
func (tr *trace) stop() {
	tr.cancel()
	tr.wg.Wait()
}
