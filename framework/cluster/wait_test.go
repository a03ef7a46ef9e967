package cluster

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPendingNamesListsWhatIsNotReady(t *testing.T) {
	node := func(name string, ready corev1.ConditionStatus) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	pod := func(name string, phase corev1.PodPhase, ready corev1.ConditionStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}}}
	}
	cases := []struct {
		name  string
		nodes []corev1.Node
		pods  []corev1.Pod
		want  []string
	}{
		{"all ready", []corev1.Node{node("cp", "True")}, []corev1.Pod{pod("etcd", corev1.PodRunning, "True")}, nil},
		{"no nodes yet", nil, nil, []string{"no nodes registered"}},
		{"node and pod pending", []corev1.Node{node("cp", "True"), node("w", "False")},
			[]corev1.Pod{pod("coredns", corev1.PodPending, "False"), pod("job", corev1.PodSucceeded, "False")},
			[]string{"node/w", "pod/coredns (Pending)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := pendingNames(tc.nodes, tc.pods); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("pendingNames = %q, want %q", got, tc.want)
			}
		})
	}
}
