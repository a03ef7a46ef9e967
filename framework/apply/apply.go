package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ManagedByLabel marks every object pxe-conformance creates in a cluster, so that a later run
// can tell its own leftovers from what someone else installed.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "pxe-conformance"
)

// FieldManager is the field manager of every write pxe-conformance makes.
const FieldManager = "pxe-conformance"

// pollInterval is how often a wait asks the API server again.
const pollInterval = time.Second

// crdGVR is where CustomResourceDefinitions are served.
var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Ref names one object in a cluster.
type Ref struct {
	// GVR is the resource the object is served as.
	GVR schema.GroupVersionResource
	// Kind is the object's kind, for messages and for choosing what to do with it.
	Kind string
	// Namespace is empty for a cluster-scoped object.
	Namespace, Name string
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Applier creates objects, records the ones it created and undoes exactly those.
type Applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	s      settings
	// created lists what Apply and Create created, in order.
	created []Ref
}

// New returns an Applier for the cluster cfg points at; it learns the cluster's kinds through
// discovery, again whenever an object's kind is new (one from a CRD applied just before).
func New(cfg *rest.Config, opts ...Option) (*Applier, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apply: discovery client: %w", err)
	}
	return NewForClient(dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), opts...)
}

// NewForClient returns an Applier that writes through dyn and maps kinds with mapper (reset
// and asked again on an unknown kind when it is a meta.ResettableRESTMapper).
func NewForClient(dyn dynamic.Interface, mapper meta.RESTMapper, opts ...Option) (*Applier, error) {
	s := defaultSettings()
	for _, o := range opts {
		if err := o.apply(&s); err != nil {
			return nil, fmt.Errorf("apply: %w", err)
		}
	}
	return &Applier{dyn: dyn, mapper: mapper, s: s}, nil
}

// Decode splits multi-document YAML into objects, in order. Empty documents are skipped; a
// document without apiVersion, kind or metadata.name is an error naming its position.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		switch {
		case u.GetAPIVersion() == "":
			return nil, fmt.Errorf("manifest document %d: no apiVersion", doc)
		case u.GetKind() == "":
			return nil, fmt.Errorf("manifest document %d (%s): no kind", doc, u.GetAPIVersion())
		case u.GetName() == "":
			return nil, fmt.Errorf("manifest document %d (%s): no metadata.name", doc, u.GetKind())
		}
		objs = append(objs, u)
	}
}

// Created returns what the Applier created and Undo would delete, in creation order.
func (a *Applier) Created() []Ref { return append([]Ref(nil), a.created...) }

// Apply puts each object into the cluster, in order: it creates the ones that are absent and
// adopts the others as the Existing policy says, recording what it created, and waits after
// each CustomResourceDefinition until it is Established. It stops at the first failure; what
// was created before it stays recorded, for Undo.
func (a *Applier) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		ref, res, err := a.locate(o)
		if err != nil {
			return err
		}
		if a.s.existing == ApplyOver {
			err = a.applyOver(ctx, ref, res, o)
		} else {
			err = a.createOrReclaim(ctx, ref, res, o)
		}
		if err != nil {
			return err
		}
		if ref.GVR == crdGVR {
			if err := a.waitEstablished(ctx, ref.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// Create creates o, which must not exist, and records it.
func (a *Applier) Create(ctx context.Context, o *unstructured.Unstructured) (Ref, error) {
	ref, res, err := a.locate(o)
	if err != nil {
		return ref, err
	}
	if _, err := res.Create(ctx, o, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return ref, fmt.Errorf("create %s: %w", ref, err)
	}
	a.created = append(a.created, ref)
	a.logf("created %s\n", ref)
	return ref, nil
}

// locate maps o's kind to its resource and names it, in the default namespace when it is
// namespaced and names none.
func (a *Applier) locate(o *unstructured.Unstructured) (Ref, dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if r, ok := a.mapper.(meta.ResettableRESTMapper); ok && meta.IsNoMatchError(err) {
		// A kind from a CRD applied just before: discovery must be read again.
		r.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return Ref{}, nil, fmt.Errorf("map %s %s: %w", gvk.Kind, o.GetName(), err)
	}
	ref := Ref{GVR: m.Resource, Kind: gvk.Kind, Name: o.GetName()}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ref.Namespace = o.GetNamespace()
		if ref.Namespace == "" {
			ref.Namespace = a.s.namespace
		}
	}
	return ref, a.resource(ref), nil
}

func (a *Applier) resource(r Ref) dynamic.ResourceInterface {
	if r.Namespace == "" {
		return a.dyn.Resource(r.GVR)
	}
	return a.dyn.Resource(r.GVR).Namespace(r.Namespace)
}

// applyOver server-side applies o, forcing conflicts, and records it when it was absent.
func (a *Applier) applyOver(ctx context.Context, ref Ref, res dynamic.ResourceInterface, o *unstructured.Unstructured) error {
	_, err := res.Get(ctx, ref.Name, metav1.GetOptions{})
	existed := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get %s: %w", ref, err)
	}
	if _, err := res.Apply(ctx, ref.Name, o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply %s: %w", ref, err)
	}
	if existed {
		a.logf("%s existed before; applied over it, Uninstall keeps it\n", ref)
		return nil
	}
	a.created = append(a.created, ref)
	a.logf("created %s\n", ref)
	return nil
}

// createOrReclaim creates o. When an object of that name exists already, it is reclaimed
// (updated to o, and recorded for Undo) only if it carries ManagedByLabel, being a leftover
// of an earlier run; otherwise it is someone else's and left exactly as it is.
func (a *Applier) createOrReclaim(ctx context.Context, ref Ref, res dynamic.ResourceInterface, o *unstructured.Unstructured) error {
	_, err := res.Create(ctx, o, metav1.CreateOptions{FieldManager: FieldManager})
	if err == nil {
		a.created = append(a.created, ref)
		a.logf("created %s\n", ref)
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create %s: %w", ref, err)
	}
	existing, err := res.Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read existing %s: %w", ref, err)
	}
	if existing.GetLabels()[ManagedByLabel] != ManagedByValue {
		a.logf("kept %s: it exists and is not ours\n", ref)
		return nil
	}
	o.SetResourceVersion(existing.GetResourceVersion())
	if _, err := res.Update(ctx, o, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("update our leftover %s: %w", ref, err)
	}
	a.created = append(a.created, ref)
	a.logf("adopted %s, left over from an earlier run\n", ref)
	return nil
}

// waitEstablished waits until the API server serves the CRD's resource, so that objects of
// its kind can be created right after.
func (a *Applier) waitEstablished(ctx context.Context, name string) error {
	last := "not read yet"
	err := wait.PollUntilContextTimeout(ctx, pollInterval, a.s.establishTimeout, true, func(ctx context.Context) (bool, error) {
		crd, err := a.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		last = "not Established yet"
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CustomResourceDefinition %s to be Established: %w (%s)", name, err, last)
	}
	return nil
}

// Undo deletes what the Applier created, newest first, and nothing else. A kind given to
// WithUndo is removed by its function instead; a kind given to WithWaitGone is waited for
// until it is gone, and when it does not go Undo stops there, since what was created before
// it (an operator, its RBAC) may be what finishes removing it. Namespaces are waited for at
// the end. An object that could not be removed stays recorded, so a later Undo retries it;
// once everything is gone, Undo does nothing.
func (a *Applier) Undo(ctx context.Context) error {
	var errs []error
	var failed, namespaces []Ref
	for k := len(a.created) - 1; k >= 0; k-- {
		r := a.created[k]
		if err := a.remove(ctx, r); err != nil {
			errs = append(errs, err)
			if a.s.waitGone[r.Kind] {
				a.created = append(a.created[:k+1:k+1], failed...)
				return errors.Join(errs...)
			}
			failed = append([]Ref{r}, failed...)
			continue
		}
		if r.Kind == "Namespace" {
			namespaces = append(namespaces, r)
		}
	}
	for _, ns := range namespaces {
		if err := a.waitGone(ctx, ns); err != nil {
			errs = append(errs, err)
			failed = append(failed, ns)
		}
	}
	a.created = failed
	return errors.Join(errs...)
}

// remove deletes one recorded object, or hands it to its kind's undo function.
func (a *Applier) remove(ctx context.Context, r Ref) error {
	a.logf("deleting %s\n", r)
	if fn, ok := a.s.undo[r.Kind]; ok {
		return fn(ctx, r)
	}
	err := a.resource(r).Delete(ctx, r.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", r, err)
	}
	if a.s.waitGone[r.Kind] {
		return a.waitGone(ctx, r)
	}
	return nil
}

// waitGone waits until the API server no longer has r.
func (a *Applier) waitGone(ctx context.Context, r Ref) error {
	err := wait.PollUntilContextTimeout(ctx, pollInterval, a.s.deleteTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := a.resource(r).Get(ctx, r.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s gone: %w", r, err)
	}
	return nil
}

func (a *Applier) logf(format string, args ...any) {
	fmt.Fprint(a.s.log, a.s.prefix)
	fmt.Fprintf(a.s.log, format, args...)
}

func ptr[T any](v T) *T { return &v }
