package multus

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pxe-conformance/pxe-conformance/fixtures/manifests"
	"github.com/pxe-conformance/pxe-conformance/framework/apply"
)

func TestManifestsMarkEveryObjectOursAndUseTheBuilderImages(t *testing.T) {
	cases := []struct {
		name     string
		manifest []byte
		image    string
		kinds    []string
	}{
		{"multus", manifests.Multus(), DefaultMultusImage, []string{"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet"}},
		{"cni-plugins", manifests.CNIPlugins(), DefaultCNIPluginsImage, []string{"DaemonSet"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := apply.Decode(tc.manifest)
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
				if o.GetLabels()[apply.ManagedByLabel] != apply.ManagedByValue {
					t.Errorf("%s %s lacks %s=%s", o.GetKind(), o.GetName(), apply.ManagedByLabel, apply.ManagedByValue)
				}
				if o.GetKind() != "DaemonSet" {
					continue
				}
				var ds appsv1.DaemonSet
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
					t.Fatal(err)
				}
				for _, c := range ds.Spec.Template.Spec.InitContainers {
					if c.Image != tc.image {
						t.Errorf("init container %s runs %s, want the builder's %s", c.Name, c.Image, tc.image)
					}
				}
				// pxec-cni-setup comes from the CNI plugins image, in both DaemonSets.
				for _, c := range ds.Spec.Template.Spec.Containers {
					if c.Image != DefaultCNIPluginsImage {
						t.Errorf("container %s runs %s, want the builder's %s", c.Name, c.Image, DefaultCNIPluginsImage)
					}
				}
				if ds.Spec.Template.Labels[apply.ManagedByLabel] != apply.ManagedByValue {
					t.Errorf("pod template lacks the managed-by label")
				}
			}
			if strings.Join(kinds, ",") != strings.Join(tc.kinds, ",") {
				t.Errorf("kinds %v, want %v", kinds, tc.kinds)
			}
		})
	}
}

func TestCustomizeMovesImageAndHostDirectories(t *testing.T) {
	objs, err := apply.Decode(manifests.Multus())
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSettings(DefaultMultusImage, []InstallOption{
		WithImage("registry.example/multus:x"), WithSetupImage("registry.example/cni-plugins:y"),
		WithCNIBinDir("/var/lib/cni/bin"), WithCNIConfDir("/etc/kubernetes/cni/net.d"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	for _, o := range objs {
		if err := customize(o, s); err != nil {
			t.Fatal(err)
		}
		if o.GetKind() == "DaemonSet" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
				t.Fatal(err)
			}
		}
	}
	if i := ds.Spec.Template.Spec.InitContainers[0]; i.Image != "registry.example/multus:x" || i.Command[0] != "/install_multus" {
		t.Errorf("init container runs %s from %s, want Multus's installer from the Multus image", i.Command, i.Image)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/cni-plugins:y" {
		t.Errorf("container image %s, want the setup image", c.Image)
	}
	if p := cleanupPod("multus", "kind-worker", s); p.Spec.Containers[0].Image != "registry.example/cni-plugins:y" {
		t.Errorf("cleanup pod runs %s, want the setup image", p.Spec.Containers[0].Image)
	}
	args := strings.Join(c.Command, " ")
	for _, want := range []string{"--bin-dir=/var/lib/cni/bin", "--conf-dir=/etc/kubernetes/cni/net.d"} {
		if !strings.Contains(args, want) {
			t.Errorf("command %q lacks %s", args, want)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	paths := map[string]string{}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		if v.HostPath != nil {
			paths[v.Name] = v.HostPath.Path
		}
	}
	want := map[string][2]string{
		"cni-bin":  {"/var/lib/cni/bin", "/host/var/lib/cni/bin"},
		"cni-conf": {"/etc/kubernetes/cni/net.d", "/host/etc/kubernetes/cni/net.d"},
	}
	for vol, w := range want {
		if paths[vol] != w[0] || mounts[vol] != w[1] {
			t.Errorf("volume %s: hostPath %s mounted at %s, want %s at %s", vol, paths[vol], mounts[vol], w[0], w[1])
		}
	}
}

func TestInstallOptionsRefuseBadValues(t *testing.T) {
	cases := []struct {
		opt   InstallOption
		field string
	}{
		{WithImage(""), "image"},
		{WithSetupImage(""), "setup image"},
		{WithCNIBinDir("opt/cni/bin"), "CNI bin dir"},
		{WithCNIBinDir("/"), "CNI bin dir"},
		{WithCNIConfDir("/etc/cni/../net.d"), "CNI conf dir"},
		{WithRolloutTimeout(0), "rollout timeout"},
		{WithCleanupTimeout(-time.Second), "cleanup timeout"},
	}
	for _, tc := range cases {
		_, err := newSettings(DefaultMultusImage, []InstallOption{tc.opt})
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("option for %s: error %v", tc.field, err)
		}
	}
}

// fakeClients returns clients backed by fakes holding objs, mapping the kinds our manifests use.
func fakeClients(t *testing.T, kube []runtime.Object, dyn ...runtime.Object) *clients {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	for _, k := range []struct {
		gvk   schema.GroupVersionKind
		scope meta.RESTScope
	}{
		{schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot},
		{schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, meta.RESTScopeNamespace},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot},
		{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}, meta.RESTScopeRoot},
		{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, meta.RESTScopeNamespace},
	} {
		mapper.Add(k.gvk, k.scope)
	}
	scheme := runtime.NewScheme()
	return &clients{
		dyn:    dynamicfake.NewSimpleDynamicClient(scheme, dyn...),
		kube:   kubefake.NewSimpleClientset(kube...),
		mapper: mapper,
	}
}

func TestInstallMultusInstallsNothingWhereMultusRuns(t *testing.T) {
	vendor := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "multus", Namespace: "openshift-multus"}}
	ours := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "pxec-multus", Namespace: "kube-system",
		Labels: map[string]string{apply.ManagedByLabel: apply.ManagedByValue}}}
	cases := []struct {
		name  string
		kube  []runtime.Object
		found string
	}{
		{"vendor Multus", []runtime.Object{vendor, ours}, "DaemonSet openshift-multus/multus"},
		{"only our own leftover", []runtime.Object{ours}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClients(t, tc.kube)
			found, err := c.foreignMultus(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found {
				t.Errorf("found %q, want %q", found, tc.found)
			}
		})
	}
	c := fakeClients(t, []runtime.Object{vendor})
	s, _ := newSettings(DefaultMultusImage, nil)
	inst, err := install(context.Background(), c, "multus", manifests.Multus(), s)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Found == "" || inst.applied != nil {
		t.Errorf("install on a cluster with Multus: Found %q, applied %v", inst.Found, inst.applied)
	}
	if err := inst.Uninstall(context.Background()); err != nil {
		t.Errorf("Uninstall of nothing: %v", err)
	}
	if len(c.dyn.(*dynamicfake.FakeDynamicClient).Actions()) != 0 {
		t.Errorf("install touched the cluster: %v", c.dyn.(*dynamicfake.FakeDynamicClient).Actions())
	}
}

func TestCleanupPodMountsTheInstalledDirectories(t *testing.T) {
	s, _ := newSettings(DefaultCNIPluginsImage, []InstallOption{WithCNIBinDir("/var/lib/cni/bin")})
	p := cleanupPod("cni-plugins", "kind-worker", s)
	if p.Spec.NodeName != "kind-worker" || !p.Spec.HostNetwork || p.Spec.RestartPolicy != "Never" {
		t.Errorf("pod spec: node %q hostNetwork %v restart %q", p.Spec.NodeName, p.Spec.HostNetwork, p.Spec.RestartPolicy)
	}
	cmd := strings.Join(p.Spec.Containers[0].Command, " ")
	if cmd != "/usr/bin/pxec-cni-setup cleanup --owner=cni-plugins --bin-dir=/var/lib/cni/bin --conf-dir=/etc/cni/net.d" {
		t.Errorf("command %q", cmd)
	}
	if m := p.Spec.Containers[0].VolumeMounts[0]; m.MountPath != "/host/var/lib/cni/bin" {
		t.Errorf("bin dir mounted at %s", m.MountPath)
	}
	if len(p.Name) > 63 {
		t.Errorf("pod name %q is longer than 63 characters", p.Name)
	}
}

// TestUninstallRemovesWhatInstallCreatedNewestFirst installs Multus on fakes whose DaemonSet
// never becomes ready, and checks that Uninstall then takes out every object Install created,
// the DaemonSet first, and the handle is spent.
func TestUninstallRemovesWhatInstallCreatedNewestFirst(t *testing.T) {
	c := fakeClients(t, nil)
	dyn := c.dyn.(*dynamicfake.FakeDynamicClient)
	dyn.PrependReactor("get", "customresourcedefinitions", func(act k8stesting.Action) (bool, runtime.Object, error) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		crd.SetName(act.(k8stesting.GetAction).GetName())
		_ = unstructured.SetNestedSlice(crd.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
		return true, crd, nil
	})
	var log strings.Builder
	s, _ := newSettings(DefaultMultusImage, []InstallOption{WithRolloutTimeout(10 * time.Millisecond), WithLog(&log)})
	inst, err := install(context.Background(), c, "multus", manifests.Multus(), s)
	if err == nil || !strings.Contains(err.Error(), "wait for DaemonSet kube-system/") {
		t.Fatalf("install with a DaemonSet that never rolls out: %v", err)
	}
	if inst == nil {
		t.Fatal("no Installation returned with the error: nothing to Uninstall with")
	}
	if err := inst.Uninstall(context.Background()); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	var deleted []string
	for _, act := range dyn.Actions() {
		if d, ok := act.(k8stesting.DeleteAction); ok {
			deleted = append(deleted, d.GetResource().Resource)
		}
	}
	if got, want := strings.Join(deleted, " "), "clusterrolebindings clusterroles serviceaccounts customresourcedefinitions"; got != want {
		t.Errorf("Uninstall deleted %s, want %s", got, want)
	}
	if !strings.Contains(log.String(), "multus: deleting DaemonSet kube-system/") {
		t.Errorf("log does not say the DaemonSet went first:\n%s", log.String())
	}
	if err := inst.Uninstall(context.Background()); err != nil || len(inst.applied.Created()) != 0 {
		t.Errorf("second Uninstall: %v, left %v", err, inst.applied.Created())
	}
}
