package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

const testManifest = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
---
---
# only a comment
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: runner, namespace: pxec}
`

func TestDecodeKeepsOrderAndSkipsEmptyDocuments(t *testing.T) {
	objs, err := Decode([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	want := "CustomResourceDefinition/things.example.com ServiceAccount/runner"
	if strings.Join(got, " ") != want {
		t.Errorf("objects %v, want %s", got, want)
	}
}

func TestDecodeNamesTheBadDocument(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, want string
	}{
		{"no apiVersion", "kind: Namespace\nmetadata: {name: x}\n", "document 1: no apiVersion"},
		{"no kind", "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n", "document 2 (v1): no kind"},
		{"no name", "apiVersion: v1\nkind: Namespace\nmetadata: {}\n", "document 1 (Namespace): no metadata.name"},
		{"not yaml", "apiVersion: [v1\n", "document 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.manifest))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

var (
	clusterRoles = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	namespaces   = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// fakeApplier returns an Applier on a fake dynamic client holding objs, mapping the kinds the
// tests use, and the fake, for its recorded actions.
func fakeApplier(t *testing.T, objs []runtime.Object, opts ...Option) (*Applier, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}, meta.RESTScopeNamespace)
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objs...)
	a, err := NewForClient(dyn, mapper, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a, dyn
}

func object(apiVersion, kind, ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func clusterRole(name string, labels map[string]string) *unstructured.Unstructured {
	return object("rbac.authorization.k8s.io/v1", "ClusterRole", "", name, labels)
}

var ours = map[string]string{ManagedByLabel: ManagedByValue}

func TestApplyReclaimsOurLeftoversAndKeepsObjectsThatAreNotOurs(t *testing.T) {
	theirs := clusterRole("pxec-multus", map[string]string{"owner": "vendor"})
	leftover := clusterRole("pxec-leftover", ours)
	var log bytes.Buffer
	a, dyn := fakeApplier(t, []runtime.Object{theirs, leftover}, WithLog(&log, "multus: "))
	ctx := context.Background()
	err := a.Apply(ctx,
		clusterRole("pxec-new", ours),
		clusterRole("pxec-leftover", map[string]string{ManagedByLabel: ManagedByValue, "fresh": "yes"}),
		clusterRole("pxec-multus", ours))
	if err != nil {
		t.Fatal(err)
	}
	var created []string
	for _, r := range a.Created() {
		created = append(created, r.String())
	}
	if got, want := strings.Join(created, ", "), "ClusterRole pxec-new, ClusterRole pxec-leftover"; got != want {
		t.Errorf("created %s, want %s", got, want)
	}
	got, err := dyn.Resource(clusterRoles).Get(ctx, "pxec-multus", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLabels()["owner"] != "vendor" || got.GetLabels()[ManagedByLabel] != "" {
		t.Errorf("someone else's ClusterRole was changed: labels %v", got.GetLabels())
	}
	got, err = dyn.Resource(clusterRoles).Get(ctx, "pxec-leftover", metav1.GetOptions{})
	if err != nil || got.GetLabels()["fresh"] != "yes" {
		t.Errorf("our leftover was not updated: %v %v", got, err)
	}
	for _, want := range []string{"multus: created ClusterRole pxec-new", "multus: adopted ClusterRole pxec-leftover", "multus: kept ClusterRole pxec-multus: it exists and is not ours"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}

	if err := a.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(clusterRoles).Get(ctx, "pxec-multus", metav1.GetOptions{}); err != nil {
		t.Errorf("Undo deleted someone else's ClusterRole: %v", err)
	}
	if got := deletes(dyn); got != "clusterroles pxec-leftover, clusterroles pxec-new" {
		t.Errorf("Undo deleted %s, want our two, newest first", got)
	}
	if err := a.Undo(ctx); err != nil || deletes(dyn) != "clusterroles pxec-leftover, clusterroles pxec-new" {
		t.Errorf("a second Undo did something: %v, deletes %s", err, deletes(dyn))
	}
}

// deletes lists the delete actions the fake saw, in order.
func deletes(dyn *dynamicfake.FakeDynamicClient) string {
	var got []string
	for _, act := range dyn.Actions() {
		if d, ok := act.(k8stesting.DeleteAction); ok {
			got = append(got, d.GetResource().Resource+" "+d.GetName())
		}
	}
	return strings.Join(got, ", ")
}

func TestApplyWaitsForTheCRDToBeEstablished(t *testing.T) {
	crd := object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "things.example.com", ours)
	for _, tc := range []struct {
		name        string
		established bool
		want        string
	}{
		{"established", true, ""},
		{"never established", false, "wait for CustomResourceDefinition things.example.com to be Established"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, dyn := fakeApplier(t, nil, WithEstablishTimeout(50*time.Millisecond))
			if tc.established {
				dyn.PrependReactor("get", "customresourcedefinitions", func(k8stesting.Action) (bool, runtime.Object, error) {
					u := crd.DeepCopy()
					_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
					return true, u, nil
				})
			}
			err := a.Apply(context.Background(), crd.DeepCopy())
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if len(a.Created()) != 1 {
				t.Errorf("the CRD is not recorded for Undo: %v", a.Created())
			}
		})
	}
}

func TestApplyPutsUnnamespacedObjectsIntoTheDefaultNamespace(t *testing.T) {
	a, dyn := fakeApplier(t, nil, WithNamespace("kubevirt"))
	if err := a.Apply(context.Background(), object("v1", "ServiceAccount", "", "kubevirt-operator", ours)); err != nil {
		t.Fatal(err)
	}
	if got := a.Created()[0].String(); got != "ServiceAccount kubevirt/kubevirt-operator" {
		t.Errorf("created %s", got)
	}
	sa := schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}
	if _, err := dyn.Resource(sa).Namespace("kubevirt").Get(context.Background(), "kubevirt-operator", metav1.GetOptions{}); err != nil {
		t.Errorf("not created in kubevirt: %v", err)
	}
}

func TestUndoStopsAtAnObjectThatDoesNotGoAndRetriesLater(t *testing.T) {
	var hooked []string
	failHook := true
	a, dyn := fakeApplier(t, nil,
		WithWaitGone("CustomResourceDefinition"),
		WithDeleteTimeout(50*time.Millisecond),
		WithUndo("ServiceAccount", func(_ context.Context, r Ref) error {
			hooked = append(hooked, r.String())
			if failHook {
				return errors.New("node cleanup failed")
			}
			return nil
		}))
	ctx := context.Background()
	ns := object("v1", "Namespace", "", "pxec-x", ours)
	sa := object("v1", "ServiceAccount", "pxec-x", "runner", ours)
	crd := object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "things.example.com", ours)
	for _, o := range []*unstructured.Unstructured{ns, crd, sa} {
		if _, err := a.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// The CRD's finalizer never ends: the fake keeps it after delete.
	dyn.PrependReactor("delete", "customresourcedefinitions", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nil
	})
	err := a.Undo(ctx)
	for _, want := range []string{"node cleanup failed", "wait for CustomResourceDefinition things.example.com gone"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Undo error %v lacks %q", err, want)
		}
	}
	if got := deletes(dyn); got != "customresourcedefinitions things.example.com" {
		t.Errorf("Undo deleted %s; it must stop at the CRD and keep the namespace", got)
	}
	if got := fmt.Sprint(a.Created()); !strings.Contains(got, "Namespace pxec-x") || !strings.Contains(got, "ServiceAccount pxec-x/runner") {
		t.Errorf("after a failed Undo the record is %s, want the namespace, the CRD and the service account", got)
	}

	dyn.ReactionChain = dyn.ReactionChain[1:]
	failHook = false
	if err := a.Undo(ctx); err != nil {
		t.Fatalf("second Undo: %v", err)
	}
	if len(hooked) != 2 || len(a.Created()) != 0 {
		t.Errorf("second Undo: hook ran for %v, record %v", hooked, a.Created())
	}
	if _, err := dyn.Resource(namespaces).Get(ctx, "pxec-x", metav1.GetOptions{}); err == nil {
		t.Errorf("the namespace is still there")
	}
}

func TestApplyOverKeepsWhatExistedOnUndo(t *testing.T) {
	existing := object("v1", "Namespace", "", "kubevirt", nil)
	var log bytes.Buffer
	a, dyn := fakeApplier(t, []runtime.Object{existing}, WithExisting(ApplyOver), WithLog(&log, "kubevirt: "))
	// The fake tracker cannot apply; answer apply patches with the object itself.
	dyn.PrependReactor("patch", "*", func(act k8stesting.Action) (bool, runtime.Object, error) {
		p := act.(k8stesting.PatchAction)
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(p.GetPatch()); err != nil {
			return true, nil, err
		}
		return true, u, nil
	})
	err := a.Apply(context.Background(), object("v1", "Namespace", "", "kubevirt", ours), clusterRole("kubevirt-operator", ours))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a.Created()); got != "[ClusterRole kubevirt-operator]" {
		t.Errorf("created %s, want only the ClusterRole", got)
	}
	if !strings.Contains(log.String(), "kubevirt: Namespace kubevirt existed before; applied over it") {
		t.Errorf("log does not say the namespace existed:\n%s", log.String())
	}
}
