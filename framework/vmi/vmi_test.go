package vmi

import (
	"testing"

	k8sv1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// bare is what New("t") returns; each case below states what its options add to it.
func bare() *v1.VirtualMachineInstance {
	return &v1.VirtualMachineInstance{
		TypeMeta:   metav1.TypeMeta{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance"},
		ObjectMeta: metav1.ObjectMeta{Name: "t"},
	}
}

func TestOptionsSetOnlyTheirFields(t *testing.T) {
	uintp := func(u uint) *uint { return &u }
	boolp := func(b bool) *bool { return &b }
	int64p := func(i int64) *int64 { return &i }

	tests := []struct {
		name string
		opts []Option
		want func(v *v1.VirtualMachineInstance)
	}{
		{"no options", nil, func(*v1.VirtualMachineInstance) {}},
		{"namespace", []Option{WithNamespace("ns1")}, func(v *v1.VirtualMachineInstance) { v.Namespace = "ns1" }},
		{"labels accumulate", []Option{WithLabel("a", "1"), WithLabel("b", "2")}, func(v *v1.VirtualMachineInstance) {
			v.Labels = map[string]string{"a": "1", "b": "2"}
		}},
		{"memory", []Option{WithMemory("512Mi")}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Resources.Requests = k8sv1.ResourceList{k8sv1.ResourceMemory: resource.MustParse("512Mi")}
		}},
		{"unparsable memory is kept for Validate", []Option{WithMemory("512MB")}, func(v *v1.VirtualMachineInstance) {
			v.Annotations = map[string]string{unparsedMemoryAnnotation: "512MB"}
		}},
		{"a valid memory after an unparsable one wins", []Option{WithMemory("512MB"), WithMemory("1Gi")}, func(v *v1.VirtualMachineInstance) {
			v.Annotations = map[string]string{}
			v.Spec.Domain.Resources.Requests = k8sv1.ResourceList{k8sv1.ResourceMemory: resource.MustParse("1Gi")}
		}},
		{"an unparsable memory after a valid one wins", []Option{WithMemory("1Gi"), WithMemory("lots")}, func(v *v1.VirtualMachineInstance) {
			v.Annotations = map[string]string{unparsedMemoryAnnotation: "lots"}
			v.Spec.Domain.Resources.Requests = k8sv1.ResourceList{}
		}},
		{"interfaces keep their order", []Option{
			WithInterface(MasqueradeInterface("default")),
			WithInterface(BridgeInterface("pxe-net", WithMAC("de:00:00:00:00:de"), WithBootOrder(1))),
		}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Interfaces = []v1.Interface{
				{Name: "default", InterfaceBindingMethod: v1.InterfaceBindingMethod{Masquerade: &v1.InterfaceMasquerade{}}},
				{Name: "pxe-net", InterfaceBindingMethod: v1.InterfaceBindingMethod{Bridge: &v1.InterfaceBridge{}},
					MacAddress: "de:00:00:00:00:de", BootOrder: uintp(1)},
			}
		}},
		{"masquerade interface takes interface options", []Option{
			WithInterface(MasqueradeInterface("default", WithBootOrder(2))),
		}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.Interfaces = []v1.Interface{
				{Name: "default", InterfaceBindingMethod: v1.InterfaceBindingMethod{Masquerade: &v1.InterfaceMasquerade{}}, BootOrder: uintp(2)},
			}
		}},
		{"networks keep their order", []Option{WithNetwork(PodNetwork()), WithNetwork(MultusNetwork("pxe-net", "other/pxe-net-conf"))}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Networks = []v1.Network{
				{Name: "default", NetworkSource: v1.NetworkSource{Pod: &v1.PodNetwork{}}},
				{Name: "pxe-net", NetworkSource: v1.NetworkSource{Multus: &v1.MultusNetwork{NetworkName: "other/pxe-net-conf"}}},
			}
		}},
		{"serial BIOS", []Option{WithSerialBIOS()}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Firmware = &v1.Firmware{Bootloader: &v1.Bootloader{BIOS: &v1.BIOS{UseSerial: boolp(true)}}}
		}},
		{"EFI without secure boot says so, since KubeVirt defaults it on", []Option{WithEFI(false)}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Firmware = &v1.Firmware{Bootloader: &v1.Bootloader{EFI: &v1.EFI{SecureBoot: boolp(false)}}}
		}},
		{"EFI with secure boot enables SMM", []Option{WithEFI(true)}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Firmware = &v1.Firmware{Bootloader: &v1.Bootloader{EFI: &v1.EFI{SecureBoot: boolp(true)}}}
			v.Spec.Domain.Features = &v1.Features{SMM: &v1.FeatureState{Enabled: boolp(true)}}
		}},
		{"rng", []Option{WithRNG()}, func(v *v1.VirtualMachineInstance) { v.Spec.Domain.Devices.Rng = &v1.Rng{} }},
		{"graphics device off", []Option{WithAutoattachGraphicsDevice(false)}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.AutoattachGraphicsDevice = boolp(false)
		}},
		{"graphics device on", []Option{WithAutoattachGraphicsDevice(true)}, func(v *v1.VirtualMachineInstance) {
			v.Spec.Domain.Devices.AutoattachGraphicsDevice = boolp(true)
		}},
		{"zero grace period is set, not omitted", []Option{WithTerminationGracePeriod(0)}, func(v *v1.VirtualMachineInstance) {
			v.Spec.TerminationGracePeriodSeconds = int64p(0)
		}},
		{"node selectors accumulate", []Option{WithNodeSelector("kubernetes.io/hostname", "n1"), WithNodeSelector("k", "v")}, func(v *v1.VirtualMachineInstance) {
			v.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": "n1", "k": "v"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New("t", tt.opts...)
			want := bare()
			tt.want(want)
			if !equality.Semantic.DeepEqual(got, want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(want)
				t.Errorf("New(\"t\", ...) =\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func TestInterfaceOptionsDoNotLeakBetweenInterfaces(t *testing.T) {
	a := BridgeInterface("a", WithBootOrder(1))
	b := BridgeInterface("b")
	if b.BootOrder != nil {
		t.Errorf("interface b has bootOrder %d set by a's option", *b.BootOrder)
	}
	*a.BootOrder = 5
	c := BridgeInterface("c", WithBootOrder(1))
	if *c.BootOrder != 1 {
		t.Errorf("interface c has bootOrder %d, want 1: options share their value", *c.BootOrder)
	}
}
