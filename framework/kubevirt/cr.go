package kubevirt

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kvv1 "kubevirt.io/api/core/v1"
)

// Features are the choices the KubeVirt resource Install creates makes.
type Features struct {
	// Emulation sets developerConfiguration.useEmulation: QEMU runs guests under TCG.
	Emulation bool
	// VirtTemplate keeps the virt-template deployment that KubeVirt v1.9.0 turns on by default
	// (feature gate Template). Off, virtTemplateDeployment.enabled is false: the offline build
	// has no virt-template images, whose source is not among the modules the lab can fetch.
	VirtTemplate bool
}

// NewKubeVirt returns the KubeVirt resource Install creates: images are never pulled when
// present (the offline lab has no registry), and f says what else is on.
func NewKubeVirt(namespace, name string, f Features) *kvv1.KubeVirt {
	kv := &kvv1.KubeVirt{
		TypeMeta:   metav1.TypeMeta{APIVersion: kvv1.SchemeGroupVersion.String(), Kind: "KubeVirt"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: kvv1.KubeVirtSpec{
			ImagePullPolicy: corev1.PullIfNotPresent,
		},
	}
	if f.Emulation {
		kv.Spec.Configuration.DeveloperConfiguration = &kvv1.DeveloperConfiguration{UseEmulation: true}
	}
	if !f.VirtTemplate {
		off := false
		kv.Spec.Configuration.VirtTemplateDeployment = &kvv1.VirtTemplateDeployment{Enabled: &off}
	}
	return kv
}

// available reports whether kv's Available condition is True, with the condition's message.
func available(kv *kvv1.KubeVirt) (bool, string) {
	for _, c := range kv.Status.Conditions {
		if c.Type == kvv1.KubeVirtConditionAvailable {
			return c.Status == corev1.ConditionTrue, c.Message
		}
	}
	return false, "no Available condition yet"
}
