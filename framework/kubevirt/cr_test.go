package kubevirt

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func TestNewKubeVirtNeverPullsAndTurnsOnOnlyWhatIsAsked(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Features
	}{
		{"kvm, no templates", Features{}},
		{"emulation", Features{Emulation: true}},
		{"templates", Features{VirtTemplate: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := NewKubeVirt("kv-ns", "kv-name", tc.f)
			if kv.Namespace != "kv-ns" || kv.Name != "kv-name" {
				t.Errorf("object %s/%s, want kv-ns/kv-name", kv.Namespace, kv.Name)
			}
			if kv.Spec.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("imagePullPolicy %q, want IfNotPresent", kv.Spec.ImagePullPolicy)
			}
			conf := kv.Spec.Configuration
			if got := conf.DeveloperConfiguration != nil && conf.DeveloperConfiguration.UseEmulation; got != tc.f.Emulation {
				t.Errorf("useEmulation %t, want %t", got, tc.f.Emulation)
			}
			// KubeVirt deploys virt-template unless enabled is explicitly false.
			templates := conf.VirtTemplateDeployment == nil || conf.VirtTemplateDeployment.Enabled == nil || *conf.VirtTemplateDeployment.Enabled
			if templates != tc.f.VirtTemplate {
				t.Errorf("virt-template deployment %t, want %t", templates, tc.f.VirtTemplate)
			}
		})
	}
}

func TestNewKubeVirtRendersTheFieldsKubeVirtReads(t *testing.T) {
	data, err := yaml.Marshal(NewKubeVirt("kubevirt", "kubevirt", Features{Emulation: true}))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m["apiVersion"] != "kubevirt.io/v1" || m["kind"] != "KubeVirt" {
		t.Errorf("apiVersion %v kind %v, want kubevirt.io/v1 KubeVirt", m["apiVersion"], m["kind"])
	}
	spec, _ := m["spec"].(map[string]any)
	if spec["imagePullPolicy"] != "IfNotPresent" {
		t.Errorf("spec.imagePullPolicy %v in\n%s", spec["imagePullPolicy"], data)
	}
	conf, _ := spec["configuration"].(map[string]any)
	dev, _ := conf["developerConfiguration"].(map[string]any)
	if dev["useEmulation"] != true {
		t.Errorf("spec.configuration.developerConfiguration.useEmulation %v in\n%s", dev["useEmulation"], data)
	}
	tmpl, _ := conf["virtTemplateDeployment"].(map[string]any)
	if tmpl["enabled"] != false {
		t.Errorf("spec.configuration.virtTemplateDeployment.enabled %v in\n%s", tmpl["enabled"], data)
	}
}
