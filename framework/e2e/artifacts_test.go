package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pxe-conformance/pxe-conformance/framework/bootimage"
	"github.com/pxe-conformance/pxe-conformance/framework/procedure"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// TestArtifactsNeverHoldTheGuestPassword: a failed spec's folder goes into the results bundle,
// and the PXE server's pod carries the guest's password in the kernel command line it serves.
func TestArtifactsNeverHoldTheGuestPassword(t *testing.T) {
	const ns, password = "pxec-7h2kq", "QJ4XKZ2M7N3PWA5R"
	cmdline := bootimage.Cmdline("c3NoLWVkMjU1MTkgQUFBQQ==", password)
	kube := fake.NewSimpleClientset(&corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pxe-server"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server",
			Env: []corev1.EnvVar{{Name: "PXE_CMDLINE", Value: cmdline}}}}},
	})
	s := &Spec{env: &Env{Config: settings.Default(), Kube: kube, Password: password}, Namespace: ns, Timings: &procedure.Timings{}}
	dir := t.TempDir()
	if err := s.CollectArtifacts(context.Background(), dir); err != nil {
		t.Fatalf("CollectArtifacts: %v", err)
	}
	podYAML, err := os.ReadFile(filepath.Join(dir, "pod-pxe-server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(podYAML), "pxec.password="+redactedPassword) {
		t.Errorf("pod YAML lacks the redacted command line:\n%s", podYAML)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), password) {
			t.Errorf("%s holds the guest password", f.Name())
		}
	}
}
