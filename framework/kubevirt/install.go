package kubevirt

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kvv1 "kubevirt.io/api/core/v1"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
)

const (
	kubeVirtCRD  = "kubevirts.kubevirt.io"
	pollInterval = 2 * time.Second
	reportEvery  = 15 * time.Second
)

var (
	kubeVirtGVR = kvv1.SchemeGroupVersion.WithResource("kubevirts")
	crdGVR      = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	apiSvcGVR   = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
)

// Installation is the KubeVirt of one cluster as Install found or made it.
type Installation struct {
	// Namespace and Name locate the KubeVirt resource.
	Namespace, Name string
	// Version is what the operator reports (status.observedKubeVirtVersion).
	Version string
	// Preexisting is true when KubeVirt was installed before Install ran: Install changed
	// nothing and Uninstall does nothing.
	Preexisting bool
	// Emulation tells whether Install turned on useEmulation, and EmulationReason why.
	Emulation       bool
	EmulationReason string
	// AvailableAfter is how long the KubeVirt resource took to become Available after the
	// manifest was applied.
	AvailableAfter time.Duration

	applied *apply.Applier // what Install created, for Uninstall
	opts    options
	dyn     dynamic.Interface
}

// Install makes sure KubeVirt runs in the cluster cfg points at. If KubeVirt is already
// installed it is left alone and returned with Preexisting set. Otherwise Install applies the
// operator manifest, creates the KubeVirt resource and waits until it is Available. On error
// the returned Installation (when not nil) holds what was created, for Uninstall.
func Install(ctx context.Context, cfg *rest.Config, opts ...Option) (*Installation, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt.apply(&o); err != nil {
			return nil, fmt.Errorf("install kubevirt: %w", err)
		}
	}
	// API warnings (deprecated node-role labels in KubeVirt's manifest) go to the progress
	// writer instead of klog on stderr.
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = progressWarnings{o.progress}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("install kubevirt: client: %w", err)
	}
	inst := &Installation{Namespace: o.namespace, Name: o.name, opts: o, dyn: dyn}

	existing, err := findKubeVirt(ctx, dyn)
	if err != nil {
		return nil, fmt.Errorf("install kubevirt: look for an installed KubeVirt: %w", err)
	}
	if existing.crd {
		if existing.kv == nil {
			return nil, fmt.Errorf("install kubevirt: CRD %s exists but no KubeVirt resource: another installation is under way or half removed; not touching it", kubeVirtCRD)
		}
		inst.Namespace, inst.Name = existing.kv.Namespace, existing.kv.Name
		inst.Version = existing.kv.Status.ObservedKubeVirtVersion
		inst.Preexisting = true
		inst.Emulation = existing.kv.Spec.Configuration.DeveloperConfiguration != nil &&
			existing.kv.Spec.Configuration.DeveloperConfiguration.UseEmulation
		fmt.Fprintf(o.progress, "kubevirt: %s already installed (%s/%s, phase %s); leaving it as it is\n",
			orUnknown(inst.Version), inst.Namespace, inst.Name, existing.kv.Status.Phase)
		return inst, nil
	}

	if len(o.manifest) == 0 {
		return nil, fmt.Errorf("install kubevirt: no operator manifest (WithOperatorManifest or WithOperatorManifestFile)")
	}
	objs, err := apply.Decode(o.manifest)
	if err == nil {
		err = checkOperatorManifest(objs, o.namespace)
	}
	if err == nil && o.images != (Images{}) {
		err = SetOperatorImages(objs, o.images)
	}
	if err != nil {
		return nil, fmt.Errorf("install kubevirt: operator manifest %s: %w", o.manifestSource, err)
	}
	if o.emulation != nil {
		inst.Emulation, inst.EmulationReason = *o.emulation, "set by WithEmulation"
	} else {
		inst.Emulation, inst.EmulationReason = EmulationNeeded(ctx)
	}

	inst.applied, err = apply.New(cfg,
		apply.WithExisting(apply.ApplyOver),
		apply.WithNamespace(o.namespace),
		apply.WithEstablishTimeout(o.availableTimeout),
		apply.WithDeleteTimeout(o.deleteTimeout),
		// The operator's finalizer removes what it deployed; it must be done before the
		// operator goes.
		apply.WithWaitGone("KubeVirt"),
		apply.WithLog(o.progress, "kubevirt: "))
	if err != nil {
		return nil, fmt.Errorf("install kubevirt: %w", err)
	}
	start := time.Now()
	fmt.Fprintf(o.progress, "kubevirt: applying %d objects of the operator manifest\n", len(objs))
	if err := inst.applied.Apply(ctx, objs...); err != nil {
		return inst, fmt.Errorf("install kubevirt: %w", err)
	}
	if err := inst.createKubeVirt(ctx); err != nil {
		return inst, fmt.Errorf("install kubevirt: %w", err)
	}
	kv, err := inst.waitAvailable(ctx, cfg, start)
	if err != nil {
		return inst, fmt.Errorf("install kubevirt: %w", err)
	}
	// Available does not cover virt-api's aggregated API (consoles, VNC, pause): wait for
	// the API server to reach it too.
	if err := inst.waitAPIServices(ctx); err != nil {
		return inst, fmt.Errorf("install kubevirt: %w", err)
	}
	inst.AvailableAfter = time.Since(start)
	inst.Version = kv.Status.ObservedKubeVirtVersion
	fmt.Fprintf(o.progress, "kubevirt: %s Available %s after apply (useEmulation=%t: %s)\n",
		orUnknown(inst.Version), inst.AvailableAfter.Round(100*time.Millisecond), inst.Emulation, inst.EmulationReason)
	return inst, nil
}

// Version returns the KubeVirt version the cluster runs (the operator's observed version), or
// "" when no KubeVirt is installed.
func Version(ctx context.Context, cfg *rest.Config) (string, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("kubevirt version: client: %w", err)
	}
	found, err := findKubeVirt(ctx, dyn)
	if err != nil {
		return "", fmt.Errorf("kubevirt version: %w", err)
	}
	if found.kv == nil {
		return "", nil
	}
	return found.kv.Status.ObservedKubeVirtVersion, nil
}

type foundKubeVirt struct {
	crd bool
	kv  *kvv1.KubeVirt
}

// findKubeVirt looks for the KubeVirt CRD and any KubeVirt resource in any namespace.
func findKubeVirt(ctx context.Context, dyn dynamic.Interface) (foundKubeVirt, error) {
	if _, err := dyn.Resource(crdGVR).Get(ctx, kubeVirtCRD, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return foundKubeVirt{}, nil
		}
		return foundKubeVirt{}, fmt.Errorf("get CRD %s: %w", kubeVirtCRD, err)
	}
	list, err := dyn.Resource(kubeVirtGVR).Namespace(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return foundKubeVirt{crd: true}, nil
		}
		return foundKubeVirt{}, fmt.Errorf("list KubeVirt resources: %w", err)
	}
	if len(list.Items) == 0 {
		return foundKubeVirt{crd: true}, nil
	}
	kv, err := toKubeVirt(&list.Items[0])
	if err != nil {
		return foundKubeVirt{}, err
	}
	return foundKubeVirt{crd: true, kv: kv}, nil
}

func toKubeVirt(u *unstructured.Unstructured) (*kvv1.KubeVirt, error) {
	kv := &kvv1.KubeVirt{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, kv); err != nil {
		return nil, fmt.Errorf("decode KubeVirt %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return kv, nil
}

// createKubeVirt creates the KubeVirt resource.
func (i *Installation) createKubeVirt(ctx context.Context) error {
	kv := NewKubeVirt(i.Namespace, i.Name, Features{Emulation: i.Emulation, VirtTemplate: i.opts.virtTemplate})
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(kv)
	if err != nil {
		return fmt.Errorf("encode KubeVirt %s/%s: %w", i.Namespace, i.Name, err)
	}
	if _, err := i.applied.Create(ctx, &unstructured.Unstructured{Object: obj}); err != nil {
		return err
	}
	fmt.Fprintf(i.opts.progress, "kubevirt: KubeVirt %s/%s asks for imagePullPolicy IfNotPresent, useEmulation=%t: %s; virt-template deployment %t\n",
		i.Namespace, i.Name, i.Emulation, i.EmulationReason, i.opts.virtTemplate)
	return nil
}

// waitAvailable waits for the Available condition, reporting the phase and pods now and then.
// Pods that cannot get their image fail the wait at once, with the kubelet's reason: an image
// the nodes lack, or one their registry refused, does not appear while the wait goes on.
func (i *Installation) waitAvailable(ctx context.Context, cfg *rest.Config, start time.Time) (*kvv1.KubeVirt, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var kv *kvv1.KubeVirt
	lastReport := time.Time{}
	err = poll(ctx, i.opts.availableTimeout, func() (bool, error) {
		u, err := i.dyn.Resource(kubeVirtGVR).Namespace(i.Namespace).Get(ctx, i.Name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("get KubeVirt %s/%s: %w", i.Namespace, i.Name, err)
		}
		if kv, err = toKubeVirt(u); err != nil {
			return false, err
		}
		ok, msg := available(kv)
		if ok {
			return true, nil
		}
		pods, err := cs.CoreV1().Pods(i.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, fmt.Errorf("list pods in %s: %w", i.Namespace, err)
		}
		if err := imageFailure(pods.Items); err != nil {
			return false, err
		}
		if time.Since(lastReport) >= reportEvery {
			lastReport = time.Now()
			fmt.Fprintf(i.opts.progress, "kubevirt: %s: phase %s, %s; pods %s\n",
				time.Since(start).Round(time.Second), orUnknown(string(kv.Status.Phase)), msg, podSummary(pods.Items))
		}
		return false, nil
	}, fmt.Sprintf("KubeVirt %s/%s Available", i.Namespace, i.Name))
	return kv, err
}

// waitAPIServices waits until every APIService served from the KubeVirt namespace (virt-api's
// subresources.kubevirt.io) is Available. The error names the ones that are not, with the API
// server's reason.
func (i *Installation) waitAPIServices(ctx context.Context) error {
	var pending []string
	start, lastReport := time.Now(), time.Now()
	err := poll(ctx, i.opts.availableTimeout, func() (bool, error) {
		list, err := i.dyn.Resource(apiSvcGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, fmt.Errorf("list APIServices: %w", err)
		}
		pending = unavailableAPIServices(list.Items, i.Namespace)
		if len(pending) > 0 && time.Since(lastReport) >= reportEvery {
			lastReport = time.Now()
			fmt.Fprintf(i.opts.progress, "kubevirt: %s: waiting for virt-api's APIServices: %s\n",
				time.Since(start).Round(time.Second), strings.Join(pending, "; "))
		}
		return len(pending) == 0, nil
	}, "APIServices of virt-api available")
	if err != nil && len(pending) > 0 {
		return fmt.Errorf("%w: %s", err, strings.Join(pending, "; "))
	}
	return err
}

// unavailableAPIServices returns "name: message" for each APIService backed by a service in
// namespace whose Available condition is not True.
func unavailableAPIServices(items []unstructured.Unstructured, namespace string) []string {
	var pending []string
	for _, u := range items {
		if ns, _, _ := unstructured.NestedString(u.Object, "spec", "service", "namespace"); ns != namespace {
			continue
		}
		msg := "no Available condition yet"
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		ok := false
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Available" {
				ok = m["status"] == "True"
				msg, _ = m["message"].(string)
			}
		}
		if !ok {
			pending = append(pending, u.GetName()+": "+msg)
		}
	}
	return pending
}

// imageFailure returns an error naming the first container that cannot get its image.
func imageFailure(pods []corev1.Pod) error {
	for _, p := range pods {
		statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
		for _, s := range statuses {
			w := s.State.Waiting
			if w == nil {
				continue
			}
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
				return fmt.Errorf("pod %s/%s container %s: %s for image %s: %s (load the image into the nodes, or make its registry reachable from them)",
					p.Namespace, p.Name, s.Name, w.Reason, s.Image, w.Message)
			}
		}
	}
	return nil
}

// podSummary is "name=Phase[/reason] ..." for a progress line.
func podSummary(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "none yet"
	}
	parts := make([]string, 0, len(pods))
	for _, p := range pods {
		state := string(p.Status.Phase)
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Waiting != nil && s.State.Waiting.Reason != "" {
				state += "/" + s.State.Waiting.Reason
				break
			}
			if !s.Ready && p.Status.Phase == corev1.PodRunning {
				state += "/not-ready"
				break
			}
		}
		parts = append(parts, p.Name+"="+state)
	}
	return strings.Join(parts, " ")
}

// Uninstall removes what Install created, newest first: the KubeVirt resource (the operator
// then removes every component it deployed, and Uninstall waits for that), then the manifest's
// objects Install created, and waits for the created namespaces to be gone. It does nothing
// for a preexisting KubeVirt, and keeps every object that existed before Install. Delete VMIs
// first: KubeVirt's default uninstall strategy keeps the resource while workloads exist, and
// Uninstall then fails after the delete timeout.
func (i *Installation) Uninstall(ctx context.Context) error {
	if i == nil || i.Preexisting || i.applied == nil {
		return nil
	}
	if err := i.applied.Undo(ctx); err != nil {
		return fmt.Errorf("uninstall kubevirt: %w", err)
	}
	return nil
}

// poll calls done every pollInterval until it returns true or an error, ctx ends or timeout
// passes; the timeout error names what was awaited.
func poll(ctx context.Context, timeout time.Duration, done func() (bool, error), what string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// progressWarnings writes API server warnings as progress lines.
type progressWarnings struct{ w io.Writer }

func (p progressWarnings) HandleWarningHeader(_ int, _ string, text string) {
	fmt.Fprintf(p.w, "kubevirt: API warning: %s\n", text)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
