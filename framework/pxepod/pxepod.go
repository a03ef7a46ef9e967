package pxepod

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/pxe-conformance/pxe-conformance/framework/podstatus"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

// Container, volume and port names of the pod.
const (
	containerName = "pxe-server"
	rootDir       = "/srv/pxe"
	// completeMarker is created in rootDir after the payload is in place.
	completeMarker = ".complete"
	// HTTPPort is the server's HTTP port (scripts, files and /events).
	HTTPPort = 8080
	// Interface is the pod's interface on the PXE network.
	Interface = "net1"
)

// Config describes one PXE server pod.
type Config struct {
	// Namespace and Name place the pod; Name defaults to "pxe-server".
	Namespace, Name string
	// Image is the PXE server image, e.g. pxec.local/pxe-server:dev.
	Image string
	// NetworkAttachment names the NetworkAttachmentDefinition (in Namespace) that puts the pod
	// on the PXE network with Address.
	NetworkAttachment string
	// Address is the server's address and prefix on the PXE network, e.g. 192.168.100.1/24;
	// it must match the attachment's static IPAM address.
	Address netip.Prefix
	// Reservations are the allow-listed clients, each with its fixed address.
	Reservations []pxe.Reservation
	// Payload is what the server hands out, packed once per run (NewPayload) and streamed into
	// every server pod of the run.
	Payload *Payload
	// Kernel and Initrd name the payload's files in the root.
	Kernel, Initrd string
	// Cmdline is the guest kernel command line the iPXE script passes.
	Cmdline string
	// NodeName pins the pod to a node; empty lets the scheduler choose.
	NodeName string
	// RouterAdvertisements makes the server answer IPv6 router solicitations, so that iPXE
	// does not wait for IPv6 autoconfiguration.
	RouterAdvertisements bool
	// CrashAfter is the server's test hook (pxe.Config.CrashAfter), for fault specs alone: the
	// server exits at that point of the first boot, and the pod stays behind with its log.
	CrashAfter pxe.CrashPoint
}

// Validate checks what Deploy needs before anything is created, naming the field and value.
func (c Config) Validate() error {
	var errs []error
	req := func(field, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("pxepod.Config.%s: required", field))
		}
	}
	req("Namespace", c.Namespace)
	req("Image", c.Image)
	req("NetworkAttachment", c.NetworkAttachment)
	req("Kernel", c.Kernel)
	req("Initrd", c.Initrd)
	if !c.Address.IsValid() || !c.Address.Addr().Is4() {
		errs = append(errs, fmt.Errorf("pxepod.Config.Address %q: want an IPv4 address with prefix, e.g. 192.168.100.1/24", c.Address))
	}
	if len(c.Reservations) == 0 {
		errs = append(errs, errors.New("pxepod.Config.Reservations: at least one client is needed"))
	}
	if c.Payload == nil {
		errs = append(errs, errors.New("pxepod.Config.Payload: required (NewPayload)"))
	} else {
		for _, name := range []string{c.Kernel, c.Initrd} {
			if name != "" && !c.Payload.Has(name) {
				errs = append(errs, fmt.Errorf("pxepod.Config.Payload: no file %q (named by Kernel or Initrd)", name))
			}
		}
	}
	return errors.Join(errs...)
}

// reservationJSON is one entry of PXE_RESERVATIONS, in fixtures/pxe-server's JSON form.
type reservationJSON struct {
	MAC        string   `json:"mac"`
	IP         string   `json:"ip"`
	Hostname   string   `json:"hostname,omitempty"`
	KernelArgs []string `json:"kernelArgs,omitempty"`
}

// Pod renders the pod Deploy creates.
func (c Config) Pod() (*corev1.Pod, error) {
	if c.Name == "" {
		c.Name = "pxe-server"
	}
	res := make([]reservationJSON, len(c.Reservations))
	for i, r := range c.Reservations {
		res[i] = reservationJSON{MAC: r.MAC.String(), IP: r.IP.String(), Hostname: r.Hostname, KernelArgs: r.KernelArgs}
	}
	resJSON, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	nets, err := json.Marshal([]map[string]string{{"name": c.NetworkAttachment, "interface": Interface}})
	if err != nil {
		return nil, err
	}
	env := []corev1.EnvVar{
		{Name: "PXE_INTERFACE", Value: Interface},
		{Name: "PXE_SERVER_IP", Value: c.Address.Addr().String()},
		{Name: "PXE_SUBNET", Value: c.Address.Masked().String()},
		{Name: "PXE_ROOT", Value: rootDir},
		{Name: "PXE_KERNEL", Value: c.Kernel},
		{Name: "PXE_INITRD", Value: c.Initrd},
		{Name: "PXE_CMDLINE", Value: c.Cmdline},
		{Name: "PXE_HTTP_ADDR", Value: ":" + strconv.Itoa(HTTPPort)},
		{Name: "PXE_RESERVATIONS", Value: string(resJSON)},
	}
	if c.RouterAdvertisements {
		env = append(env, corev1.EnvVar{Name: "PXE_RA", Value: "true"})
	}
	if c.CrashAfter != "" {
		env = append(env, corev1.EnvVar{Name: "PXE_CRASH_AFTER", Value: string(c.CrashAfter)})
	}
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: c.Name, Namespace: c.Namespace,
			Labels:      map[string]string{"app.kubernetes.io/name": "pxec-pxe-server"},
			Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": string(nets)},
		},
		Spec: corev1.PodSpec{
			NodeName:                      c.NodeName,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           c.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				// The server starts once Deploy has put the payload in place.
				Command: []string{"/bin/sh", "-c", fmt.Sprintf(
					"until [ -e %s/%s ]; do sleep 0.2; done; exec /usr/bin/pxe-server", rootDir, completeMarker)},
				Env: env,
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
					{Name: "tftp", ContainerPort: 69, Protocol: corev1.ProtocolUDP},
					{Name: "dhcp", ContainerPort: 67, Protocol: corev1.ProtocolUDP},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/events", Port: intstr.FromInt32(HTTPPort)}},
					PeriodSeconds: 1, FailureThreshold: 1,
				},
				SecurityContext: &corev1.SecurityContext{
					// Ports 67 and 69, SO_BINDTODEVICE and the ICMPv6 socket; nothing more.
					Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE", "NET_RAW"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "root", MountPath: rootDir}},
			}},
			Volumes: []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}, nil
}

// Server is a deployed PXE server pod.
type Server struct {
	kube kubernetes.Interface
	rest *rest.Config
	// Namespace and Name identify the pod; Node is where it runs.
	Namespace, Name, Node string
	// Address is the server's address on the PXE network.
	Address netip.Prefix
}

// Deploy creates the pod, uploads the payload and waits until the server answers over the pod
// proxy. On error the pod is deleted again (its namespace is the caller's to remove).
func Deploy(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, c Config) (*Server, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pod, err := c.Pod()
	if err != nil {
		return nil, err
	}
	created, err := kube.CoreV1().Pods(c.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create PXE server pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	s := &Server{kube: kube, rest: cfg, Namespace: created.Namespace, Name: created.Name, Address: c.Address}
	if err := s.start(ctx, c); err != nil {
		derr := s.Delete(context.WithoutCancel(ctx))
		return nil, errors.Join(err, derr)
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, c Config) error {
	p, err := s.waitPod(ctx, "its container running", func(p *corev1.Pod) bool {
		for _, st := range p.Status.ContainerStatuses {
			if st.Name == containerName && st.State.Running != nil {
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	s.Node = p.Spec.NodeName
	archive := c.Payload.archive
	script := fmt.Sprintf("tar -x -f - -C %s && touch %s/%s", rootDir, rootDir, completeMarker)
	if out, err := s.exec(ctx, bytes.NewReader(archive), "/bin/sh", "-c", script); err != nil {
		return fmt.Errorf("upload the payload (%d bytes) into PXE server pod %s/%s: %w: %s", len(archive), s.Namespace, s.Name, err, out)
	}
	if _, err := s.waitPod(ctx, "Ready (its HTTP port answering)", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	_, err = s.Events(ctx, "")
	return err
}

// waitPod polls the pod until ok, failing at once when podstatus says it will never run as
// asked: its container has exited or cannot start, or its network is not and will not be set
// up (a CNI plugin failing, Multus not attaching it to the PXE network).
func (s *Server) waitPod(ctx context.Context, what string, ok func(*corev1.Pod) bool) (*corev1.Pod, error) {
	var last *corev1.Pod
	for {
		p, err := s.kube.CoreV1().Pods(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if err == nil {
			last = p
			if why := podstatus.Terminated(p); why != "" {
				return p, fmt.Errorf("PXE server pod %s/%s: %s\n%s", s.Namespace, s.Name, why, s.logTail(ctx))
			}
			if why := podstatus.NetworkBlocked(ctx, s.kube, p); why != "" {
				return p, fmt.Errorf("PXE server pod %s/%s cannot start on node %q: %s", s.Namespace, s.Name, p.Spec.NodeName, why)
			}
			if ok(p) {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("PXE server pod %s/%s not %s: %w (%s)", s.Namespace, s.Name, what, context.Cause(ctx), describe(last))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "pod not seen"
	}
	var conds []string
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			conds = append(conds, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Message))
		}
	}
	return fmt.Sprintf("phase %s, node %q; %s", p.Status.Phase, p.Spec.NodeName, strings.Join(conds, "; "))
}

func (s *Server) logTail(ctx context.Context) string {
	b, err := s.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "last log lines:\n" + strings.Join(lines, "\n")
}

// exec runs argv in the server container with stdin, returning its combined output.
func (s *Server) exec(ctx context.Context, stdin io.Reader, argv ...string) (string, error) {
	req := s.kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(s.Namespace).Name(s.Name).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: containerName, Command: argv, Stdin: stdin != nil, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(s.rest, "POST", req.URL())
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: &out})
	return strings.TrimSpace(out.String()), err
}

// Payload is the files a PXE server hands out, packed into the one tar stream that is
// streamed into each server pod.
type Payload struct {
	names   map[string]bool
	archive []byte
}

// NewPayload reads files (base name in the served root to local path) once and packs them,
// naming every file that is missing, not regular, or named as anything but a plain file name.
func NewPayload(files map[string]string) (*Payload, error) {
	var errs []error
	names := slices.Sorted(maps.Keys(files))
	for _, name := range names {
		path := files[name]
		if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || name == completeMarker {
			errs = append(errs, fmt.Errorf("payload file name %q: want a plain file name", name))
		}
		if st, err := os.Stat(path); err != nil {
			errs = append(errs, fmt.Errorf("payload file %q %q: %w", name, path, err))
		} else if !st.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("payload file %q %q: not a regular file", name, path))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Payload{names: map[string]bool{}}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		b, err := os.ReadFile(files[name])
		if err != nil {
			return nil, fmt.Errorf("payload file %s: %w", name, err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
		p.names[name] = true
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	p.archive = buf.Bytes()
	return p, nil
}

// Has reports whether the payload holds a file called name.
func (p *Payload) Has(name string) bool { return p.names[name] }

// Size is the packed payload's size in bytes.
func (p *Payload) Size() int { return len(p.archive) }

// Events returns the server's events for mac, or all events when mac is empty. Once the
// server is gone for good (its container has exited, its pod is deleted or being deleted) it
// returns what the server's log still holds of them, with an error wrapping pxe.ErrServerGone
// that says what became of the pod.
func (s *Server) Events(ctx context.Context, mac string) ([]pxe.Event, error) {
	params := map[string]string{}
	if mac != "" {
		params["mac"] = mac
	}
	readCtx, cancel := context.WithTimeout(ctx, eventsReadTimeout)
	defer cancel()
	raw, err := s.kube.CoreV1().Pods(s.Namespace).ProxyGet("http", s.Name, strconv.Itoa(HTTPPort), "/events", params).DoRaw(readCtx)
	if err != nil {
		err = fmt.Errorf("read PXE server events from %s/%s: %w", s.Namespace, s.Name, err)
		if events, gone := s.goneEvents(ctx, mac); gone != nil {
			return events, gone
		}
		return nil, err
	}
	var events []pxe.Event
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("read PXE server events from %s/%s: %w", s.Namespace, s.Name, err)
	}
	return events, nil
}

// eventsReadTimeout bounds one read of the events over the pod proxy. The server answers in
// milliseconds; once its pod's sandbox is gone the proxy's dial would hang for its own 30 s
// instead, so a read that takes this long asks the pod what became of the server.
const eventsReadTimeout = 5 * time.Second

// goneEvents returns, when the server is gone for good, the events of mac its log holds and
// an error wrapping pxe.ErrServerGone; nil and nil while the pod may still answer.
func (s *Server) goneEvents(ctx context.Context, mac string) ([]pxe.Event, error) {
	p, err := s.kube.CoreV1().Pods(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	var why string
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%w: PXE server pod %s/%s was deleted", pxe.ErrServerGone, s.Namespace, s.Name)
	case err != nil:
		return nil, nil
	case p.DeletionTimestamp != nil:
		why = "is being deleted"
	default:
		why = podstatus.Terminated(p)
	}
	if why == "" {
		return nil, nil
	}
	gone := fmt.Errorf("%w: PXE server pod %s/%s: %s", pxe.ErrServerGone, s.Namespace, s.Name, why)
	log, err := s.Logs(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (its log cannot be read: %v)", gone, err)
	}
	events, err := pxe.EventsFromLog(bytes.NewReader(log), mac)
	if err != nil {
		return events, fmt.Errorf("%w (%v)", gone, err)
	}
	return events, gone
}

// Logs returns the server container's log (JSON lines).
func (s *Server) Logs(ctx context.Context) ([]byte, error) {
	return s.kube.CoreV1().Pods(s.Namespace).GetLogs(s.Name, &corev1.PodLogOptions{Container: containerName}).DoRaw(ctx)
}

// Delete removes the pod and waits until it is gone, so that nothing answers on the PXE
// network any more.
func (s *Server) Delete(ctx context.Context) error {
	zero := int64(0)
	err := s.kube.CoreV1().Pods(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete PXE server pod %s/%s: %w", s.Namespace, s.Name, err)
	}
	for {
		_, err := s.kube.CoreV1().Pods(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PXE server pod %s/%s still there: %w", s.Namespace, s.Name, context.Cause(ctx))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
