package multus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/pxe-conformance/pxe-conformance/fixtures/manifests"
	"github.com/pxe-conformance/pxe-conformance/framework/apply"
	"github.com/pxe-conformance/pxe-conformance/framework/nodeexec"
)

// Image names the offline builder (ci/imagebuilder/network) produces; WithImage replaces them
// on clusters that get their images from elsewhere. The Multus image (ours, or upstream's thin
// image) only provides the plugin, through its /install_multus; the CNI plugins image also
// carries pxec-cni-setup, which runs in Multus's DaemonSet and in every cleanup pod.
const (
	DefaultMultusImage     = "pxec.local/multus:v4.2.2"
	DefaultCNIPluginsImage = "pxec.local/cni-plugins:v1.7.1"
)

// Defaults of the wait options.
const (
	// DefaultRolloutTimeout bounds the wait for a DaemonSet's pods to be ready on every node.
	DefaultRolloutTimeout = 3 * time.Minute
	// DefaultCleanupTimeout bounds each wait of Uninstall: the DaemonSet's pods ending, a
	// cleanup pod's name coming free, and the cleanup pods finishing.
	DefaultCleanupTimeout = 2 * time.Minute
)

const (
	setupBinary   = "/usr/bin/pxec-cni-setup"
	hostMountRoot = "/host"
	// pollInterval is how often a wait looks at the cluster again.
	pollInterval = time.Second
	// diagnoseTimeout bounds the reading of pod states for an error message.
	diagnoseTimeout = 10 * time.Second
)

// InstallOption changes how InstallMultus or InstallCNIPlugins installs its component.
type InstallOption interface {
	applyInstall(*installSettings) error
}

type installOptionFunc func(*installSettings) error

func (f installOptionFunc) applyInstall(s *installSettings) error { return f(s) }

type installSettings struct {
	image          string
	setupImage     string // runs pxec-cni-setup: the DaemonSet's containers and the cleanup pods
	binDir         string
	confDir        string
	rolloutTimeout time.Duration
	cleanupTimeout time.Duration
	log            io.Writer
}

// fieldError refuses an option's value, naming the field.
func fieldError(field, value, reason string) error {
	return fmt.Errorf("%s %q: %s", field, value, reason)
}

// WithImage takes the component from image instead of the builder's pxec.local image: for
// Multus, an image laid out as upstream's thin image (/install_multus, the plugin under
// /usr/src/multus-cni/bin).
func WithImage(image string) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if image == "" {
			return fieldError("image", image, "must not be empty")
		}
		s.image = image
		return nil
	})
}

// WithSetupImage runs pxec-cni-setup, in Multus's DaemonSet and in its cleanup pods, from image
// instead of DefaultCNIPluginsImage. InstallCNIPlugins runs it from its own image (WithImage).
func WithSetupImage(image string) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if image == "" {
			return fieldError("setup image", image, "must not be empty")
		}
		s.setupImage = image
		return nil
	})
}

// WithCNIBinDir names the nodes' CNI plugin directory (default /opt/cni/bin; OpenShift uses
// /var/lib/cni/bin).
func WithCNIBinDir(dir string) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
			return fieldError("CNI bin dir", dir, "must be a clean absolute path below /")
		}
		s.binDir = dir
		return nil
	})
}

// WithCNIConfDir names the nodes' CNI config directory (default /etc/cni/net.d).
func WithCNIConfDir(dir string) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
			return fieldError("CNI conf dir", dir, "must be a clean absolute path below /")
		}
		s.confDir = dir
		return nil
	})
}

// WithRolloutTimeout bounds the wait for the DaemonSet's pods to become ready on every node
// (default DefaultRolloutTimeout); the caller's context still applies.
func WithRolloutTimeout(d time.Duration) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if d <= 0 {
			return fieldError("rollout timeout", d.String(), "must be positive")
		}
		s.rolloutTimeout = d
		return nil
	})
}

// WithCleanupTimeout bounds each wait of Uninstall (default DefaultCleanupTimeout); the
// caller's context still applies.
func WithCleanupTimeout(d time.Duration) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		if d <= 0 {
			return fieldError("cleanup timeout", d.String(), "must be positive")
		}
		s.cleanupTimeout = d
		return nil
	})
}

// WithLog prints one line for each object created, adopted, kept or deleted.
func WithLog(w io.Writer) InstallOption {
	return installOptionFunc(func(s *installSettings) error {
		s.log = w
		return nil
	})
}

// Installation is a component as InstallMultus or InstallCNIPlugins left it: what they created
// (and Uninstall removes) or, when the cluster already ran the component, what was found.
type Installation struct {
	// Component is "multus" or "cni-plugins".
	Component string
	// Found names the existing installation that was used instead of ours
	// ("DaemonSet openshift-multus/multus"); empty when we installed the component.
	Found string

	c        *clients
	settings installSettings
	// applied records what we created, for Uninstall; nil when nothing was to be done.
	applied *apply.Applier
}

// clients are the API clients an installation uses: kube for DaemonSets and pods, dyn and
// mapper for framework/apply.
type clients struct {
	dyn    dynamic.Interface
	kube   kubernetes.Interface
	mapper meta.RESTMapper
}

func newClients(cfg *rest.Config) (*clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return &clients{dyn: dyn, kube: kube, mapper: mapper}, nil
}

// InstallMultus installs Multus (thin plugin, v4.2.2) on every node of the cluster cfg points
// at and waits until each node's pod has written Multus's config. When the cluster already
// runs a Multus DaemonSet that is not ours (vendor clusters often do), it installs nothing and
// says so in Found. An object that already exists and is not ours (the CRD, say) is used and
// never changed or removed. The Installation is returned, also with an error, whenever
// something was created, so the caller can Uninstall it.
func InstallMultus(ctx context.Context, cfg *rest.Config, opts ...InstallOption) (*Installation, error) {
	s, err := newSettings(DefaultMultusImage, opts)
	if err != nil {
		return nil, fmt.Errorf("install multus: %w", err)
	}
	c, err := newClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("install multus: %w", err)
	}
	return install(ctx, c, "multus", manifests.Multus(), s)
}

// InstallCNIPlugins installs the bridge, static, tuning and host-local CNI plugins (v1.7.1) on
// every node that lacks them and waits until each node's pod is done. Plugins a node already
// has are kept as they are; Uninstall removes only the ones it copied.
func InstallCNIPlugins(ctx context.Context, cfg *rest.Config, opts ...InstallOption) (*Installation, error) {
	s, err := newSettings(DefaultCNIPluginsImage, opts)
	if err != nil {
		return nil, fmt.Errorf("install CNI plugins: %w", err)
	}
	// The plugins image runs its own pxec-cni-setup.
	s.setupImage = s.image
	c, err := newClients(cfg)
	if err != nil {
		return nil, fmt.Errorf("install CNI plugins: %w", err)
	}
	return install(ctx, c, "cni-plugins", manifests.CNIPlugins(), s)
}

func newSettings(image string, opts []InstallOption) (installSettings, error) {
	s := installSettings{image: image, setupImage: DefaultCNIPluginsImage, binDir: "/opt/cni/bin", confDir: "/etc/cni/net.d",
		rolloutTimeout: DefaultRolloutTimeout, cleanupTimeout: DefaultCleanupTimeout, log: io.Discard}
	for _, o := range opts {
		if err := o.applyInstall(&s); err != nil {
			return s, err
		}
	}
	return s, nil
}

func install(ctx context.Context, c *clients, component string, manifest []byte, s installSettings) (*Installation, error) {
	inst := &Installation{Component: component, c: c, settings: s}
	if component == "multus" {
		found, err := c.foreignMultus(ctx)
		if err != nil {
			return nil, fmt.Errorf("install multus: %w", err)
		}
		if found != "" {
			inst.Found = found
			fmt.Fprintf(s.log, "%s: the cluster already runs %s; installing nothing\n", component, found)
			return inst, nil
		}
	}
	objs, err := apply.Decode(manifest)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", component, err)
	}
	for _, o := range objs {
		if err := customize(o, s); err != nil {
			return nil, fmt.Errorf("install %s: %w", component, err)
		}
	}
	inst.applied, err = apply.NewForClient(c.dyn, c.mapper,
		apply.WithUndo("DaemonSet", inst.removeDaemonSet),
		apply.WithLog(s.log, component+": "))
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", component, err)
	}
	if err := inst.applied.Apply(ctx, objs...); err != nil {
		return inst.orNil(), fmt.Errorf("install %s: %w", component, err)
	}
	for _, r := range inst.applied.Created() {
		if r.Kind != "DaemonSet" {
			continue
		}
		if err := waitDaemonSet(ctx, c.kube, r, s.rolloutTimeout); err != nil {
			return inst, fmt.Errorf("install %s: %w", component, err)
		}
		fmt.Fprintf(s.log, "%s: %s is ready on every node\n", component, r)
	}
	return inst, nil
}

// orNil returns the installation when it created something, so that callers get a handle
// exactly when there is something to undo.
func (i *Installation) orNil() *Installation {
	if len(i.applied.Created()) == 0 {
		return nil
	}
	return i
}

// foreignMultus returns the first DaemonSet, in any namespace, whose name says Multus and
// that we did not create, or "".
func (c *clients) foreignMultus(ctx context.Context) (string, error) {
	all, err := DaemonSets(ctx, c.kube)
	if err != nil {
		return "", fmt.Errorf("look for an existing Multus: %w", err)
	}
	for _, ds := range all {
		if ds.Labels[apply.ManagedByLabel] != apply.ManagedByValue {
			return "DaemonSet " + ds.Namespace + "/" + ds.Name, nil
		}
	}
	return "", nil
}

// customize applies the images and host directories to a DaemonSet of ours: the component's
// image to the init containers (Multus's installer), the setup image to the containers (which
// run pxec-cni-setup), the hostPath volumes, the --bin-dir/--conf-dir flags and the mount
// points under /host, which pxec-cni-setup expects to mirror the host paths.
func customize(o *unstructured.Unstructured, s installSettings) error {
	if o.GetKind() != "DaemonSet" {
		return nil
	}
	var ds appsv1.DaemonSet
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ds); err != nil {
		return fmt.Errorf("read DaemonSet %s: %w", o.GetName(), err)
	}
	dirs := map[string]string{"cni-bin": s.binDir, "cni-conf": s.confDir}
	for i := range ds.Spec.Template.Spec.Volumes {
		v := &ds.Spec.Template.Spec.Volumes[i]
		if d, ok := dirs[v.Name]; ok && v.HostPath != nil {
			v.HostPath.Path = d
		}
	}
	for i := range ds.Spec.Template.Spec.InitContainers {
		ds.Spec.Template.Spec.InitContainers[i].Image = s.image
	}
	for i := range ds.Spec.Template.Spec.Containers {
		ctr := &ds.Spec.Template.Spec.Containers[i]
		ctr.Image = s.setupImage
		for j := range ctr.VolumeMounts {
			if d, ok := dirs[ctr.VolumeMounts[j].Name]; ok {
				ctr.VolumeMounts[j].MountPath = hostMountRoot + d
			}
		}
		for j, a := range ctr.Command {
			switch {
			case strings.HasPrefix(a, "--bin-dir="):
				ctr.Command[j] = "--bin-dir=" + s.binDir
			case strings.HasPrefix(a, "--conf-dir="):
				ctr.Command[j] = "--conf-dir=" + s.confDir
			}
		}
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&ds)
	if err != nil {
		return fmt.Errorf("write DaemonSet %s: %w", o.GetName(), err)
	}
	o.Object = m
	o.SetAPIVersion("apps/v1")
	o.SetKind("DaemonSet")
	return nil
}

// waitDaemonSet waits until every scheduled pod of the DaemonSet runs the current template
// and is ready; on timeout the error says which pods are not and why.
func waitDaemonSet(ctx context.Context, kube kubernetes.Interface, r apply.Ref, timeout time.Duration) error {
	var status, selector string
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		ds, err := kube.AppsV1().DaemonSets(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			status = err.Error()
			return false, nil
		}
		selector = metav1.FormatLabelSelector(ds.Spec.Selector)
		st := ds.Status
		status = fmt.Sprintf("%d of %d pods ready, %d updated", st.NumberReady, st.DesiredNumberScheduled, st.UpdatedNumberScheduled)
		return st.ObservedGeneration >= ds.Generation && st.DesiredNumberScheduled > 0 &&
			st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberReady == st.DesiredNumberScheduled, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w: %s%s", r, err, status, podProblems(context.WithoutCancel(ctx), kube, r.Namespace, selector))
	}
	return nil
}

// podProblems describes the pods selected in namespace that are not ready, for error messages.
func podProblems(ctx context.Context, kube kubernetes.Interface, namespace, selector string) string {
	if selector == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, diagnoseTimeout)
	defer cancel()
	pods, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "; list pods: " + err.Error()
	}
	var sb strings.Builder
	for _, p := range pods.Items {
		if podReady(&p) {
			continue
		}
		fmt.Fprintf(&sb, "\n  pod %s on node %s: %s", p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			switch {
			case cs.State.Waiting != nil:
				fmt.Fprintf(&sb, "; %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				fmt.Fprintf(&sb, "; %s terminated: %s %s", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.Message)
			case !cs.Ready:
				fmt.Fprintf(&sb, "; %s running, not ready", cs.Name)
			}
		}
	}
	return sb.String()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Uninstall removes what the installation created and nothing else, newest first: the
// DaemonSet goes first, and once its pods have ended (Multus's pods remove their config as they
// stop) a cleanup pod on each node it ran on removes the binaries it installed; then the other
// objects, the CRD only if we created it. After Found, or once everything is gone, it does
// nothing; what could not be removed is tried again by the next call.
func (i *Installation) Uninstall(ctx context.Context) error {
	if i == nil || i.applied == nil {
		return nil
	}
	if err := i.applied.Undo(ctx); err != nil {
		return fmt.Errorf("uninstall %s: %w", i.Component, err)
	}
	return nil
}

// removeDaemonSet is Uninstall's step for our DaemonSet: delete it, wait for its pods to end,
// and clean the nodes they ran on.
func (i *Installation) removeDaemonSet(ctx context.Context, r apply.Ref) error {
	nodes, err := i.c.deleteDaemonSet(ctx, r, i.settings.cleanupTimeout)
	if err != nil {
		return err
	}
	return i.c.cleanNodes(ctx, i.Component, nodes, i.settings)
}

// deleteDaemonSet deletes the DaemonSet, waits until its pods are gone and returns the nodes
// they ran on; a DaemonSet that is gone already ran nowhere.
func (c *clients) deleteDaemonSet(ctx context.Context, r apply.Ref, timeout time.Duration) ([]string, error) {
	ds, err := c.kube.AppsV1().DaemonSets(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", r, err)
	}
	sel := metav1.FormatLabelSelector(ds.Spec.Selector)
	pods, err := c.kube.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", r, err)
	}
	seen := map[string]bool{}
	var nodes []string
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && !seen[p.Spec.NodeName] {
			seen[p.Spec.NodeName] = true
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	sort.Strings(nodes)
	fg := metav1.DeletePropagationForeground
	err = c.kube.AppsV1().DaemonSets(r.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{PropagationPolicy: &fg})
	if err != nil && !apierrors.IsNotFound(err) {
		return nodes, fmt.Errorf("delete %s: %w", r, err)
	}
	err = wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		left, err := c.kube.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, nil
		}
		return len(left.Items) == 0, nil
	})
	if err != nil {
		return nodes, fmt.Errorf("wait for the pods of %s to end: %w", r, err)
	}
	return nodes, nil
}

// cleanupPod is the one-shot pod that runs `pxec-cni-setup cleanup` on one node.
func cleanupPod(component, node string, s installSettings) *corev1.Pod {
	sum := sha256.Sum256([]byte(node))
	privileged := true
	dirType := corev1.HostPathDirectoryOrCreate
	p := nodeexec.HostPod(metav1.ObjectMeta{
		Name:      "pxec-" + component + "-cleanup-" + hex.EncodeToString(sum[:])[:10],
		Namespace: metav1.NamespaceSystem,
		Labels:    map[string]string{"app.kubernetes.io/name": "pxec-" + component + "-cleanup"},
	}, node, corev1.Container{
		Name:            "cleanup",
		Image:           s.setupImage,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command: []string{setupBinary, "cleanup", "--owner=" + component,
			"--bin-dir=" + s.binDir, "--conf-dir=" + s.confDir},
		SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "cni-bin", MountPath: hostMountRoot + s.binDir},
			{Name: "cni-conf", MountPath: hostMountRoot + s.confDir},
		},
	})
	p.Spec.Volumes = []corev1.Volume{
		{Name: "cni-bin", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: s.binDir, Type: &dirType}}},
		{Name: "cni-conf", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: s.confDir, Type: &dirType}}},
	}
	return p
}

// cleanNodes runs a cleanup pod on each node, waits for all of them to finish, and deletes
// them; a pod that fails is reported with its log.
func (c *clients) cleanNodes(ctx context.Context, component string, nodes []string, s installSettings) error {
	var pods []*corev1.Pod
	var errs []error
	for _, n := range nodes {
		p := cleanupPod(component, n, s)
		_ = c.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		created, err := c.createWhenGone(ctx, p, s.cleanupTimeout)
		if err != nil {
			errs = append(errs, fmt.Errorf("clean node %s: %w", n, err))
			continue
		}
		pods = append(pods, created)
	}
	for _, p := range pods {
		var phase corev1.PodPhase
		err := wait.PollUntilContextTimeout(ctx, pollInterval, s.cleanupTimeout, true, func(ctx context.Context) (bool, error) {
			got, err := c.kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			phase = got.Status.Phase
			return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
		})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("clean node %s: pod %s/%s did not finish (phase %q): %w", p.Spec.NodeName, p.Namespace, p.Name, phase, err))
		case phase == corev1.PodFailed:
			logs, _ := c.kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			errs = append(errs, fmt.Errorf("clean node %s: pod %s/%s failed:\n%s", p.Spec.NodeName, p.Namespace, p.Name, logs))
		default:
			fmt.Fprintf(s.log, "%s: cleaned node %s\n", component, p.Spec.NodeName)
		}
		if err := c.kube.CoreV1().Pods(p.Namespace).Delete(context.WithoutCancel(ctx), p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// createWhenGone creates p, waiting first for a pod of the same name from an interrupted
// earlier cleanup to finish terminating.
func (c *clients) createWhenGone(ctx context.Context, p *corev1.Pod, timeout time.Duration) (*corev1.Pod, error) {
	var created *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := c.kube.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{FieldManager: apply.FieldManager})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		created = got
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return created, nil
}
