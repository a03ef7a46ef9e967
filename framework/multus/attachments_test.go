package multus

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestMissingAttachmentsComparesWhatThePodAskedWithWhatMultusMade(t *testing.T) {
	const status = `[{"name":"pxec-pods","interface":"eth0","default":true},{"name":"pxec-a/pxe-server-net","interface":"net1"}]`
	for _, tc := range []struct {
		name, networks, status string
		want                   []string
	}{
		{"made", `[{"name":"pxe-server-net","interface":"net1"}]`, status, nil},
		{"no status at all (Multus stopped)", `[{"name":"pxe-server-net","interface":"net1"}]`, "",
			[]string{"pxec-a/pxe-server-net (interface net1)"}},
		{"another interface", `[{"name":"pxe-server-net","interface":"net2"}]`, status, []string{"pxec-a/pxe-server-net (interface net2)"}},
		{"KubeVirt's form, with namespace", `[{"name":"pxe-net","namespace":"pxec-a","interface":"pod5bbed4e46dd"}]`, status,
			[]string{"pxec-a/pxe-net (interface pod5bbed4e46dd)"}},
		{"short form", "pxe-server-net@net1,other/x", status, []string{"other/x"}},
		{"asks for none", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "pxec-a", Annotations: map[string]string{}}}
			if tc.networks != "" {
				p.Annotations[NetworksAnnotation] = tc.networks
			}
			if tc.status != "" {
				p.Annotations[NetworkStatusAnnotation] = tc.status
			}
			got, err := MissingAttachments(p)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("MissingAttachments = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
