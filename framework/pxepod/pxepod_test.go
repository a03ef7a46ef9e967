package pxepod

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
)

func validConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, n := range []string{"vmlinuz", "initrd.img"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("content of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
		files[n] = p
	}
	payload, err := NewPayload(files)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("de:00:00:00:00:de")
	return Config{
		Namespace: "pxec-abc", Image: "pxec.local/pxe-server:dev", NetworkAttachment: "pxe-server-net",
		Address:      netip.MustParsePrefix("192.168.100.1/24"),
		Reservations: []pxe.Reservation{{MAC: mac, IP: netip.MustParseAddr("192.168.100.10"), KernelArgs: []string{"a=b"}}},
		Payload:      payload, Kernel: "vmlinuz", Initrd: "initrd.img", Cmdline: "console=ttyS0",
	}
}

func TestValidateNamesFieldAndValue(t *testing.T) {
	if err := validConfig(t).Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"no image", func(c *Config) { c.Image = "" }, []string{"Config.Image", "required"}},
		{"IPv6 address", func(c *Config) { c.Address = netip.MustParsePrefix("fd00::1/64") }, []string{"Config.Address", "fd00::1/64"}},
		{"kernel not in files", func(c *Config) { c.Kernel = "bzImage" }, []string{`"bzImage"`, "Kernel"}},
		{"no payload", func(c *Config) { c.Payload = nil }, []string{"Config.Payload", "required"}},
		{"no clients", func(c *Config) { c.Reservations = nil }, []string{"Reservations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.change(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPodCarriesServerSettingsAndAttachment(t *testing.T) {
	c := validConfig(t)
	c.RouterAdvertisements = true
	p, err := c.Pod()
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "pxe-server" || p.Namespace != "pxec-abc" {
		t.Errorf("pod %s/%s", p.Namespace, p.Name)
	}
	var nets []map[string]string
	if err := json.Unmarshal([]byte(p.Annotations["k8s.v1.cni.cncf.io/networks"]), &nets); err != nil || len(nets) != 1 || nets[0]["name"] != "pxe-server-net" || nets[0]["interface"] != Interface {
		t.Errorf("networks annotation %q (%v)", p.Annotations["k8s.v1.cni.cncf.io/networks"], err)
	}
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	want := map[string]string{"PXE_INTERFACE": "net1", "PXE_SERVER_IP": "192.168.100.1", "PXE_SUBNET": "192.168.100.0/24",
		"PXE_ROOT": "/srv/pxe", "PXE_KERNEL": "vmlinuz", "PXE_INITRD": "initrd.img", "PXE_CMDLINE": "console=ttyS0", "PXE_RA": "true", "PXE_HTTP_ADDR": ":8080"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	var res []reservationJSON
	if err := json.Unmarshal([]byte(env["PXE_RESERVATIONS"]), &res); err != nil || len(res) != 1 || res[0].MAC != "de:00:00:00:00:de" || res[0].IP != "192.168.100.10" || res[0].KernelArgs[0] != "a=b" {
		t.Errorf("PXE_RESERVATIONS %q (%v)", env["PXE_RESERVATIONS"], err)
	}
	caps := p.Spec.Containers[0].SecurityContext
	if caps == nil || caps.Privileged != nil || len(caps.Capabilities.Add) != 2 {
		t.Errorf("security context %+v: want NET_BIND_SERVICE and NET_RAW only, not privileged", caps)
	}
	if !strings.Contains(strings.Join(p.Spec.Containers[0].Command, " "), completeMarker) {
		t.Errorf("command %q does not wait for the upload", p.Spec.Containers[0].Command)
	}
}

func TestNewPayloadNamesEveryBadFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(good, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := NewPayload(map[string]string{"vmlinuz": "/nonexistent/vmlinuz", "../x": good, "d": dir})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{`payload file "vmlinuz" "/nonexistent/vmlinuz"`, `payload file name "../x": want a plain file name`, `payload file "d" "` + dir + `": not a regular file`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestPayloadTarHoldsEachFileByName(t *testing.T) {
	c := validConfig(t)
	got := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(c.Payload.archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = string(body)
	}
	if len(got) != 2 || got["vmlinuz"] != "content of vmlinuz" || got["initrd.img"] != "content of initrd.img" {
		t.Errorf("archive holds %v", got)
	}
}

// TestWaitFailsAtOnceWhenThePodsNetworkCannotBeSetUp is the regression test for a spec that
// waited 15 minutes for a PXE server pod whose sandbox the bridge plugin could not set up.
func TestWaitFailsAtOnceWhenThePodsNetworkCannotBeSetUp(t *testing.T) {
	kube := fake.NewSimpleClientset()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pxe-server", Namespace: "pxec-abc", UID: "u1"},
		Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	msg := `Failed to create pod sandbox: plugin type="multus" name="multus-cni-network" failed (add): failed to find plugin "bridge" in path [/opt/cni/bin]`
	ctx := context.Background()
	if _, err := kube.CoreV1().Pods("pxec-abc").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Reason: "FailedCreatePodSandBox", Message: "an older pod of the same name",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pxe-server", UID: "u0"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "now"}, Reason: "FailedCreatePodSandBox", Message: msg,
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "pxe-server", UID: "u1"}},
	} {
		if _, err := kube.CoreV1().Events("pxec-abc").Create(ctx, &e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{kube: kube, Namespace: "pxec-abc", Name: "pxe-server"}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := s.waitPod(wait, "its container running", func(*corev1.Pod) bool { return false })
	if wait.Err() != nil {
		t.Fatal("the wait ran out its bound instead of failing on the sandbox event")
	}
	if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), `node "n1"`) || strings.Contains(err.Error(), "older pod") {
		t.Errorf("waitPod = %v, want the current pod's sandbox event quoted", err)
	}
}

// unreachable is the pod proxy's answer when nothing listens behind it.
type unreachable struct{}

func (unreachable) DoRaw(context.Context) ([]byte, error) {
	return nil, errors.New(`error trying to reach service: dial tcp 10.244.0.7:8080: connect: connection refused`)
}

func (unreachable) Stream(context.Context) (io.ReadCloser, error) {
	return nil, errors.New("unreachable")
}

// TestEventsSaysTheServerIsGoneOnlyWhenItIs: an events endpoint that does not answer is the
// server gone for good when its container has exited or its pod is deleted, and a passing
// failure while the container runs.
func TestEventsSaysTheServerIsGoneOnlyWhenItIs(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	exited := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}
	for _, tc := range []struct {
		name     string
		pod      *corev1.Pod // nil: deleted
		gone     bool
		wantText string
	}{
		{"container running", serverPod(corev1.PodRunning, running), false, "connection refused"},
		{"container exited", serverPod(corev1.PodFailed, exited), true, "the PXE server is gone: PXE server pod pxec-abc/pxe-server: container pxe-server exited 3 (Error)"},
		{"pod deleted", nil, true, "the PXE server is gone: PXE server pod pxec-abc/pxe-server was deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewSimpleClientset()
			if tc.pod != nil {
				if _, err := kube.CoreV1().Pods("pxec-abc").Create(t.Context(), tc.pod, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			kube.PrependProxyReactor("pods", func(k8stesting.Action) (bool, rest.ResponseWrapper, error) {
				return true, unreachable{}, nil
			})
			s := &Server{kube: kube, Namespace: "pxec-abc", Name: "pxe-server"}
			_, err := s.Events(t.Context(), "de:00:00:00:00:de")
			if errors.Is(err, pxe.ErrServerGone) != tc.gone || err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Events = %v; want gone=%v, saying %q", err, tc.gone, tc.wantText)
			}
		})
	}
}

// hanging is the pod proxy's answer once the pod's sandbox is gone: its dial hangs.
type hanging struct{}

func (hanging) DoRaw(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hanging) Stream(ctx context.Context) (io.ReadCloser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestEventsAsksThePodWhenTheProxyHangs is the regression test for run 3, where a read of a
// dead server's events hung for the proxy's 30 s before the pod was asked.
func TestEventsAsksThePodWhenTheProxyHangs(t *testing.T) {
	kube := fake.NewSimpleClientset(serverPod(corev1.PodFailed, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}))
	kube.PrependProxyReactor("pods", func(k8stesting.Action) (bool, rest.ResponseWrapper, error) { return true, hanging{}, nil })
	s := &Server{kube: kube, Namespace: "pxec-abc", Name: "pxe-server"}
	ctx, cancel := context.WithTimeout(t.Context(), 4*eventsReadTimeout)
	defer cancel()
	if _, err := s.Events(ctx, "de:00:00:00:00:de"); !errors.Is(err, pxe.ErrServerGone) || ctx.Err() != nil {
		t.Errorf("Events = %v; want pxe.ErrServerGone once the read's own bound ended", err)
	}
}

func serverPod(phase corev1.PodPhase, state corev1.ContainerState) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "pxe-server", Namespace: "pxec-abc"},
		Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, State: state}}}}
}
