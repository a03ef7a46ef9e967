package nodeexec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pxe-conformance/pxe-conformance/framework/apply"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// PodRunner is a Runner that reaches nodes the only way every cluster allows, through the
// API: each command runs in a short-lived pod on the node's host network, in a namespace of the
// suite's. The conformance suite uses it on every cluster, the lab's included, so that the path
// CI exercises is the one vendors get. Without capabilities the pod suffices for the read-only
// checks of framework/network (InspectBridge, BridgeExists, CheckBridgeNetfilter), which read
// sysfs and /proc/sys/net only; VLANSupported needs WithCapabilities("NET_ADMIN") for its
// throwaway bridge. It is not meant for EnsureBridge, which changes the node for good.
type PodRunner struct {
	kube      kubernetes.Interface
	namespace string
	image     string
	caps      []corev1.Capability
	mounts    []hostMount // host directories mounted at the same path
	nodeMount bool        // run in the node's mount namespace (WithNodeMountNamespace)
	timeout   time.Duration
}

// DefaultPodTimeout bounds how long a command's pod may take to be scheduled, start, run and
// end (WithPodTimeout changes it); the caller's context still applies.
const DefaultPodTimeout = 2 * time.Minute

const (
	// podPollInterval is how often NodeExec looks at its pod.
	podPollInterval = 500 * time.Millisecond
	// podDeleteTimeout bounds the deletion of a finished pod; one that outlives it goes with
	// its namespace.
	podDeleteTimeout = 30 * time.Second
)

// PodRunnerOption changes the pods a PodRunner starts.
type PodRunnerOption interface {
	applyPodRunner(*PodRunner) error
}

type podRunnerOptionFunc func(*PodRunner) error

func (f podRunnerOptionFunc) applyPodRunner(r *PodRunner) error { return f(r) }

// WithCapabilities adds Linux capabilities (such as NET_ADMIN) to the command's container;
// the namespace must admit such pods (pod security level privileged).
func WithCapabilities(caps ...string) PodRunnerOption {
	return podRunnerOptionFunc(func(r *PodRunner) error {
		for _, c := range caps {
			if c == "" || strings.ToUpper(c) != c || strings.HasPrefix(c, "CAP_") {
				return fmt.Errorf("capabilities %q: want a capability name such as NET_ADMIN", c)
			}
			r.caps = append(r.caps, corev1.Capability(c))
		}
		return nil
	})
}

// WithNodeMountNamespace runs each command in the node's own mount namespace, with the node's
// programs rather than the image's: what reads or changes a node's iptables rules, which only
// the node's own iptables can (it knows the node's backend, nft or legacy, and the image has
// none). The pod shares the node's PID namespace, runs privileged and enters PID 1's mount
// namespace with nsenter (the PXE server image's busybox has it); the namespace must admit such
// pods (pod security level privileged).
func WithNodeMountNamespace() PodRunnerOption {
	return podRunnerOptionFunc(func(r *PodRunner) error {
		r.nodeMount = true
		return nil
	})
}

// WithHostPathReadOnly mounts the node's directory path read-only at the same path in the
// command's container, for a check that reads the node's files (its CNI plugins in
// /opt/cni/bin): a host-network pod sees the node's links but not its file system. The
// directory must exist (hostPath type Directory), so the probe never creates one on the node;
// where it does not, the pod cannot start and NodeExec fails at its timeout.
func WithHostPathReadOnly(path string) PodRunnerOption {
	return withHostPath(path, true)
}

// WithHostPathWritable mounts the node's directory path writable: only for the fault specs,
// which change a node on purpose (a cluster the run owns) and put it back.
func WithHostPathWritable(path string) PodRunnerOption {
	return withHostPath(path, false)
}

func withHostPath(path string, readOnly bool) PodRunnerOption {
	return podRunnerOptionFunc(func(r *PodRunner) error {
		if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
			return fmt.Errorf("host path %q: want a clean absolute directory below /, such as /opt/cni/bin", path)
		}
		r.mounts = append(r.mounts, hostMount{path: path, readOnly: readOnly})
		return nil
	})
}

// hostMount is one node directory a runner's pods mount.
type hostMount struct {
	path     string
	readOnly bool
}

// WithPodTimeout bounds each command's pod from creation to its end (default
// DefaultPodTimeout).
func WithPodTimeout(d time.Duration) PodRunnerOption {
	return podRunnerOptionFunc(func(r *PodRunner) error {
		if d <= 0 {
			return fmt.Errorf("pod timeout %q: must be positive", d)
		}
		r.timeout = d
		return nil
	})
}

// NewPodRunner runs node commands in pods of namespace from image, which must hold sh, cat,
// ls, grep, cut, tr and ip (the PXE server image's busybox does) and be pullable by the nodes.
func NewPodRunner(cfg *rest.Config, namespace, image string, opts ...PodRunnerOption) (*PodRunner, error) {
	if msgs := validation.IsDNS1123Label(namespace); len(msgs) > 0 {
		return nil, fmt.Errorf("pod runner: namespace %q: %s", namespace, strings.Join(msgs, "; "))
	}
	if image == "" {
		return nil, fmt.Errorf("pod runner: image %q: must not be empty", image)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("pod runner: %w", err)
	}
	r := &PodRunner{kube: kube, namespace: namespace, image: image, timeout: DefaultPodTimeout}
	for _, o := range opts {
		if err := o.applyPodRunner(r); err != nil {
			return nil, fmt.Errorf("pod runner: %w", err)
		}
	}
	return r, nil
}

// NodeExec runs argv in a pod on node's host network, waits for it to end, deletes it and
// returns what it printed (standard output and error, as the pod log merges them). A non-zero
// exit is a *command.Error carrying the command line and that output.
func (r *PodRunner) NodeExec(ctx context.Context, node string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec on node %s: empty command", node)
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	cmd := argv
	if r.nodeMount {
		cmd = append([]string{"nsenter", "--target", "1", "--mount", "--"}, argv...)
	}
	pod := HostPod(metav1.ObjectMeta{
		Name:      "pxec-node-exec-" + hex.EncodeToString(b[:]),
		Namespace: r.namespace,
		Labels:    map[string]string{"app.kubernetes.io/name": "pxec-node-exec"},
	}, node, corev1.Container{
		Name: "exec", Image: r.image, ImagePullPolicy: corev1.PullIfNotPresent, Command: cmd,
		SecurityContext: r.securityContext(),
	})
	pod.Spec.HostPID = r.nodeMount
	r.mountHostPaths(pod)
	cmdline := command.Line(argv...)
	pods := r.kube.CoreV1().Pods(r.namespace)
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{FieldManager: apply.FieldManager}); err != nil {
		return nil, fmt.Errorf("exec on node %s: %s: create pod: %w", node, cmdline, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), podDeleteTimeout)
		defer cancel()
		zero := int64(0)
		// A pod that cannot be deleted now goes with the suite's namespace.
		_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	var term *corev1.ContainerStateTerminated
	var waiting *corev1.ContainerStateWaiting
	err := wait.PollUntilContextTimeout(ctx, podPollInterval, r.timeout, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Terminated != nil {
				term = s.State.Terminated
				return true, nil
			}
			if w := s.State.Waiting; w != nil {
				waiting = w
				if pullGaveUp[w.Reason] {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if waiting != nil && term == nil && (err == nil || pullReasons[waiting.Reason]) {
		return nil, fmt.Errorf("exec on node %s: %s: pod %s/%s: %w", node, cmdline, r.namespace, pod.Name,
			&ImagePullError{Image: r.image, Node: node, Reason: waiting.Reason, Message: waiting.Message})
	}
	if err != nil {
		why := ""
		if waiting != nil {
			why = strings.TrimSpace(waiting.Reason + " " + waiting.Message)
		}
		return nil, fmt.Errorf("exec on node %s: %s: pod %s/%s did not finish (%s): %w", node, cmdline, r.namespace, pod.Name, why, err)
	}
	out, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{Container: "exec"}).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec on node %s: %s: read output: %w", node, cmdline, err)
	}
	if term.ExitCode != 0 {
		return out, fmt.Errorf("exec on node %s: %w", node,
			&command.Error{Command: cmdline, Output: string(out), Err: fmt.Errorf("exit status %d", term.ExitCode)})
	}
	return out, nil
}

// HostPod is the one-shot pod that runs ctr on node's host network, as meta names it: never
// restarted, without a service account token, tolerating every taint, and labelled ours
// (apply.ManagedByLabel) besides meta's labels.
func HostPod(meta metav1.ObjectMeta, node string, ctr corev1.Container) *corev1.Pod {
	noToken := false
	labels := map[string]string{apply.ManagedByLabel: apply.ManagedByValue}
	for k, v := range meta.Labels {
		labels[k] = v
	}
	meta.Labels = labels
	return &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			NodeName:                     node,
			HostNetwork:                  true,
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: &noToken,
			Tolerations:                  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:                   []corev1.Container{ctr},
		},
	}
}

// ImagePullError says a command's pod could not start because its node could not pull the
// runner's image: the reason a preflight reports as the image's, not the command's.
type ImagePullError struct {
	Image, Node string
	// Reason and Message are the kubelet's (ErrImagePull, ImagePullBackOff, ...).
	Reason, Message string
}

func (e *ImagePullError) Error() string {
	return strings.TrimSpace(fmt.Sprintf("node %s cannot pull image %s: %s %s", e.Node, e.Image, e.Reason, e.Message))
}

// pullReasons are the kubelet's waiting reasons for an image it could not pull.
var pullReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
}

// pullGaveUp are the waiting reasons after which NodeExec stops at once: the pull failed at
// least once (ImagePullBackOff follows ErrImagePull within seconds) or can never succeed. A
// preflight then says so now rather than at the end of the kubelet's back-off.
var pullGaveUp = map[string]bool{
	"ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
}

// mountHostPaths adds the runner's host directories to pod's only container.
func (r *PodRunner) mountHostPaths(pod *corev1.Pod) {
	dir := corev1.HostPathDirectory
	for i, m := range r.mounts {
		name := fmt.Sprintf("host-%d", i)
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name,
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: m.path, Type: &dir}}})
		c := &pod.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: m.path, ReadOnly: m.readOnly})
	}
}

// securityContext adds the runner's capabilities, if any, to the container's defaults; a
// runner in the node's mount namespace runs privileged.
func (r *PodRunner) securityContext() *corev1.SecurityContext {
	if r.nodeMount {
		privileged := true
		return &corev1.SecurityContext{Privileged: &privileged}
	}
	if len(r.caps) == 0 {
		return nil
	}
	return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: r.caps}}
}
