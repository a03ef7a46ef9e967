//go:build cluster

package sonobuoy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/network"
	fixture "github.com/pxe-conformance/pxe-conformance/fixtures/sonobuoy"
	"github.com/pxe-conformance/pxe-conformance/framework/apply"
	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/command"
	"github.com/pxe-conformance/pxe-conformance/framework/prereq"
	"github.com/pxe-conformance/pxe-conformance/framework/results"
)

// runBound bounds one plugin run: the certification specs, one after another, under emulation
// (the plugin's own bound, E2E_TIMEOUT, is 90 minutes).
const runBound = 100 * time.Minute

// The stand-in worker's container, as Sonobuoy names its own.
const workerContainer = "sonobuoy-worker"

// lab is the running lab cluster the tests use, with the images they need loaded on its nodes.
type lab struct {
	kubeconfig string
	cluster    *cluster.Cluster
	kube       kubernetes.Interface
	plugin     *fixture.Definition
}

func newLab(t *testing.T, ctx context.Context, images ...string) *lab {
	t.Helper()
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		prereq.Missing(t, "KUBECONFIG is unset: name the lab cluster's (make cluster prints it)")
	}
	if exec.Command("docker", "info").Run() != nil {
		prereq.Missing(t, "the Docker engine does not answer (ci/engine-up.sh starts it)")
	}
	def, err := fixture.ParsePlugin()
	if err != nil {
		t.Fatal(err)
	}
	if want := network.PluginImage(build.Options{}); def.Spec.Image != want {
		t.Fatalf("plugin.yaml runs %s, the image builder makes %s", def.Spec.Image, want)
	}
	for _, img := range append([]string{def.Spec.Image}, images...) {
		if exec.Command("docker", "image", "inspect", img).Run() != nil {
			prereq.Missingf(t, "image %s is missing (make sonobuoy-image)", img)
		}
	}
	c, err := cluster.Existing(ctx, kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadImages(ctx, append([]string{def.Spec.Image}, images...)...); err != nil {
		t.Fatalf("load images (the cluster of %s must be a kind cluster of this host): %v", kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}
	return &lab{kubeconfig: kubeconfig, cluster: c, kube: kube, plugin: def}
}

// applyRBAC creates rbac.yaml's objects, with the namespace renamed to ns, and removes them
// (the namespace last, waiting until it is gone) when the test ends.
func (l *lab) applyRBAC(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	objs, err := apply.Decode(fixture.RBAC())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace":
			o.SetName(ns)
		case "ServiceAccount":
			o.SetNamespace(ns)
		case "ClusterRoleBinding":
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				s.(map[string]any)["namespace"] = ns
			}
			if err := unstructured.SetNestedSlice(o.Object, subjects, "subjects"); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, err := apply.New(l.cluster.REST, apply.WithLog(newTestLog(t), "rbac: "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := a.Undo(ctx); err != nil {
			t.Errorf("remove rbac.yaml's objects: %v", err)
		}
	})
	if err := a.Apply(ctx, objs...); err != nil {
		t.Fatal(err)
	}
}

// TestPluginJobLeavesDoneAndTheBundle runs the plugin's container as plugin.yaml describes it,
// in a Job with the service account of rbac.yaml and, beside it, a stand-in for Sonobuoy's worker
// that serves the shared results directory; done and the bundle are read through the API.
func TestPluginJobLeavesDoneAndTheBundle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), runBound+10*time.Minute)
	defer cancel()
	l := newLab(t, ctx)
	var b [3]byte
	_, _ = rand.Read(b[:])
	ns := "pxec-sonobuoy-" + hex.EncodeToString(b[:])
	l.applyRBAC(t, ctx, ns)

	job := l.pluginJob(ns)
	start := time.Now()
	if _, err := l.kube.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := metav1.DeletePropagationForeground
		_ = l.kube.BatchV1().Jobs(ns).Delete(context.Background(), job.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	})
	pod := l.waitPod(t, ctx, ns, job.Name)
	t.Cleanup(func() {
		if t.Failed() {
			l.logTail(t, ns, pod, l.plugin.Spec.Name, 80)
		}
	})

	done := l.waitDone(t, ctx, ns, pod)
	t.Logf("done after %s: %s", time.Since(start).Round(time.Second), done)
	dir := envValue(l.plugin.Spec.Env, "SONOBUOY_RESULTS_DIR")
	rel, ok := strings.CutPrefix(done, dir+"/")
	if !ok || strings.Contains(rel, "/") || !strings.HasPrefix(rel, results.BundlePrefix+"-") || !strings.HasSuffix(rel, ".tar.gz") {
		t.Fatalf("done names %q, want %s/%s-<timestamp>.tar.gz", done, dir, results.BundlePrefix)
	}
	tarball := l.proxyGet(t, ctx, ns, pod, "/results/"+rel)
	t.Logf("bundle %s: %d bytes", rel, len(tarball))
	files := untar(t, tarball)
	checkBundle(t, files, strings.TrimSuffix(rel, ".tar.gz")+"/")

	if code := l.exitCode(t, ctx, ns, pod, l.plugin.Spec.Name); code != 0 {
		t.Errorf("the plugin's container exited %d, want 0", code)
	}
	l.logTail(t, ns, pod, l.plugin.Spec.Name, 12)
}

// pluginJob is the Job Sonobuoy would make of plugin.yaml (its podSpec, its container, the
// results emptyDir), with the stand-in worker in the place of Sonobuoy's.
func (l *lab) pluginJob(ns string) *batchv1.Job {
	spec := l.plugin.PodSpec.DeepCopy()
	plugin := *l.plugin.Spec.DeepCopy()
	worker := corev1.Container{
		Name: workerContainer, Image: plugin.Image, ImagePullPolicy: plugin.ImagePullPolicy,
		Command:      append(append([]string(nil), plugin.Command...), "serve"),
		Env:          []corev1.EnvVar{{Name: "SONOBUOY_RESULTS_DIR", Value: envValue(plugin.Env, "SONOBUOY_RESULTS_DIR")}},
		VolumeMounts: plugin.VolumeMounts,
	}
	spec.Containers = []corev1.Container{plugin, worker}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	backoff := int32(0)
	name := "sonobuoy-" + l.plugin.SonobuoyConfig.PluginName + "-job"
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{BackoffLimit: &backoff, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"sonobuoy-plugin": l.plugin.SonobuoyConfig.PluginName}},
			Spec:       *spec,
		}},
	}
}

// waitPod returns the name of the Job's pod once it exists.
func (l *lab) waitPod(t *testing.T, ctx context.Context, ns, job string) string {
	t.Helper()
	for {
		pods, err := l.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
		if err == nil && len(pods.Items) > 0 {
			return pods.Items[0].Name
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no pod of job %s/%s: %v", ns, job, err)
		case <-time.After(2 * time.Second):
		}
	}
}

// waitDone reads done through the stand-in worker until the plugin writes it. A plugin
// container that ended without it fails the test at once, as does one that cannot start.
func (l *lab) waitDone(t *testing.T, ctx context.Context, ns, pod string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, runBound)
	defer cancel()
	last := ""
	for {
		b, err := l.kube.CoreV1().Pods(ns).ProxyGet("http", pod, strconv.Itoa(fixture.ServePort), "/done", nil).DoRaw(ctx)
		if err == nil {
			return strings.TrimSpace(string(b))
		}
		p, perr := l.kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if perr == nil {
			for _, s := range p.Status.ContainerStatuses {
				state := fmt.Sprintf("%s: %+v", s.Name, s.State)
				if s.Name == l.plugin.Spec.Name && state != last {
					t.Logf("%s %s", time.Now().Format(time.TimeOnly), containerState(s))
					last = state
				}
				if w := s.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" || w.Reason == "CreateContainerConfigError") {
					t.Fatalf("container %s of %s/%s: %s: %s", s.Name, ns, pod, w.Reason, w.Message)
				}
				if s.Name == l.plugin.Spec.Name && s.State.Terminated != nil && time.Since(s.State.Terminated.FinishedAt.Time) > 30*time.Second {
					t.Fatalf("the plugin's container ended (%s) and no done file is served: %v", containerState(s), err)
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no done file within %s: %v", runBound, err)
		case <-time.After(15 * time.Second):
		}
	}
}

func containerState(s corev1.ContainerStatus) string {
	switch {
	case s.State.Running != nil:
		return s.Name + " running since " + s.State.Running.StartedAt.Format(time.TimeOnly)
	case s.State.Terminated != nil:
		return fmt.Sprintf("%s terminated: exit %d (%s)", s.Name, s.State.Terminated.ExitCode, s.State.Terminated.Reason)
	case s.State.Waiting != nil:
		return s.Name + " waiting: " + s.State.Waiting.Reason
	}
	return s.Name + " in no state yet"
}

func (l *lab) proxyGet(t *testing.T, ctx context.Context, ns, pod, path string) []byte {
	t.Helper()
	b, err := l.kube.CoreV1().Pods(ns).ProxyGet("http", pod, strconv.Itoa(fixture.ServePort), path, nil).DoRaw(ctx)
	if err != nil {
		t.Fatalf("GET %s from %s/%s through the pod proxy: %v", path, ns, pod, err)
	}
	return b
}

// exitCode waits until container of pod has ended and returns its exit code.
func (l *lab) exitCode(t *testing.T, ctx context.Context, ns, pod, container string) int32 {
	t.Helper()
	for {
		p, err := l.kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Status.ContainerStatuses {
			if s.Name == container && s.State.Terminated != nil {
				return s.State.Terminated.ExitCode
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s of %s/%s did not end", container, ns, pod)
		case <-time.After(2 * time.Second):
		}
	}
}

func (l *lab) logTail(t *testing.T, ns, pod, container string, lines int64) {
	b, err := l.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &lines}).DoRaw(context.Background())
	if err != nil {
		t.Logf("log of %s/%s %s: %v", ns, pod, container, err)
		return
	}
	t.Logf("last lines of %s/%s %s:\n%s", ns, pod, container, b)
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// untar reads a gzipped tarball into its regular files by name.
func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a gzipped tarball: %v", err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("tarball: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path.Clean(h.Name)] = data
	}
}

// checkBundle checks a results bundle's files under prefix: every report, the page, an
// environment read from inside the cluster, and a JUnit report in which the certification
// specs, and only they, ran and passed.
func checkBundle(t *testing.T, files map[string][]byte, prefix string) {
	t.Helper()
	for _, f := range []string{results.JUnitFile, results.ReportFile, results.TimingsFile, results.EnvironmentFile, results.PageFile} {
		if len(files[prefix+f]) == 0 {
			t.Errorf("bundle has no %s%s", prefix, f)
		}
	}
	var env results.Environment
	if err := json.Unmarshal(files[prefix+results.EnvironmentFile], &env); err != nil {
		t.Errorf("environment.json: %v", err)
	} else if env.Cluster.KubernetesVersion == "" || len(env.Cluster.Nodes) == 0 {
		t.Errorf("environment.json read no cluster from inside it: %+v", env.Cluster)
	} else {
		t.Logf("environment: Kubernetes %s, %d node(s)", env.Cluster.KubernetesVersion, len(env.Cluster.Nodes))
	}
	checkCertification(t, files[prefix+results.JUnitFile])
}

// labelList is the label list Ginkgo appends to a test case's name.
var labelList = regexp.MustCompile(`\[([a-z0-9, -]+)\]$`)

// checkCertification checks a JUnit report: no failure, at least one spec passed, every spec
// that ran carries the certification label, and every certification spec ran and passed.
func checkCertification(t *testing.T, junit []byte) {
	t.Helper()
	var suites reporters.JUnitTestSuites
	if err := xml.Unmarshal(junit, &suites); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	passed, skipped := 0, 0
	for _, s := range suites.TestSuites {
		for _, c := range s.TestCases {
			if !strings.HasPrefix(c.Name, "[It]") {
				if c.Failure != nil || c.Error != nil {
					t.Errorf("%s failed: %s", c.Name, failureText(c))
				}
				continue
			}
			m := labelList.FindStringSubmatch(c.Name)
			certification := m != nil && strings.Contains(", "+m[1]+",", ", certification,")
			switch {
			case c.Status == "passed" && certification:
				passed++
			case c.Status == "skipped" && !certification:
				skipped++
			case certification:
				t.Errorf("certification spec %q: %s %s", c.Name, c.Status, failureText(c))
			default:
				t.Errorf("spec %q has no certification label but ran: %s", c.Name, c.Status)
			}
		}
	}
	if passed == 0 {
		t.Error("no certification spec passed")
	}
	t.Logf("junit.xml: %d certification specs passed, %d other specs not selected", passed, skipped)
}

func failureText(c reporters.JUnitTestCase) string {
	switch {
	case c.Failure != nil:
		return c.Failure.Message
	case c.Error != nil:
		return c.Error.Message
	}
	return ""
}

// TestSonobuoyRunsThePlugin runs Sonobuoy v0.57.3 itself with the plugin, as a vendor would:
// rbac.yaml applied first (namespace sonobuoy), then sonobuoy run (with config.json: our
// Sonobuoy is built by Go 1.26), retrieve, results, delete. The CLI is the binary of the
// Sonobuoy image the aggregator and worker run.
func TestSonobuoyRunsThePlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), runBound+15*time.Minute)
	defer cancel()
	image := network.SonobuoyImage(build.Options{})
	l := newLab(t, ctx, image)
	const ns = "sonobuoy" // rbac.yaml's, Sonobuoy's default
	if _, err := l.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s exists already (another Sonobuoy run?): %v", ns, err)
	}
	dir := t.TempDir()
	cli := extractCLI(t, ctx, image, dir)
	sonobuoyCmd := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, cli, append(args, "--kubeconfig", l.kubeconfig)...)
		out, err := command.Output(ctx, cmd)
		return string(out), err
	}
	l.applyRBAC(t, ctx, ns)
	t.Cleanup(func() {
		// Its own bound: the test's context is over by now. The plugin's pod has 3 minutes to
		// let the suite remove what it made.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		out, err := sonobuoyCmd(ctx, "delete", "--wait")
		if err != nil {
			t.Errorf("sonobuoy delete: %v", err)
		}
		t.Logf("sonobuoy delete --wait:\n%s", out)
	})

	pluginFile, configFile := filepath.Join(dir, "plugin.yaml"), filepath.Join(dir, "config.json")
	for f, b := range map[string][]byte{pluginFile: fixture.Plugin(), configFile: fixture.RunConfig()} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	out, err := sonobuoyCmd(ctx, "run", "--plugin", pluginFile, "--config", configFile, "--sonobuoy-image", image,
		"--image-pull-policy", "IfNotPresent", "--skip-preflight=existingnamespace",
		"--wait="+strconv.Itoa(int(runBound.Minutes())), "--wait-output", "silent")
	t.Logf("sonobuoy run (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("sonobuoy run: %v", err)
	}
	status, _ := sonobuoyCmd(ctx, "status", "--show-all")
	t.Logf("sonobuoy status --show-all:\n%s", status)

	out, err = sonobuoyCmd(ctx, "retrieve", dir)
	if err != nil {
		t.Fatalf("sonobuoy retrieve: %v", err)
	}
	tarball := strings.TrimSpace(out)
	summary, err := command.Output(ctx, exec.CommandContext(ctx, cli, "results", tarball))
	if err != nil {
		t.Fatalf("sonobuoy results: %v", err)
	}
	t.Logf("sonobuoy results %s:\n%s", filepath.Base(tarball), summary)
	for _, want := range []string{"Plugin: pxe-conformance", "Status: passed", "Failed: 0"} {
		if !strings.Contains(string(summary), want) {
			t.Errorf("sonobuoy results does not say %q", want)
		}
	}
	b, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, b)
	const global = "plugins/pxe-conformance/results/global/"
	prefix := ""
	for name := range files {
		if rest, ok := strings.CutPrefix(name, global); ok && strings.HasSuffix(rest, "/"+results.JUnitFile) {
			prefix = global + strings.TrimSuffix(rest, results.JUnitFile)
		}
	}
	if prefix == "" {
		t.Fatalf("the retrieved tarball has no %s<bundle>/%s", global, results.JUnitFile)
	}
	t.Logf("the plugin's results in the Sonobuoy tarball: %s", prefix)
	checkBundle(t, files, prefix)
}

// extractCLI copies /sonobuoy out of image into dir: the CLI is the aggregator's binary.
func extractCLI(t *testing.T, ctx context.Context, image, dir string) string {
	t.Helper()
	out, err := command.Output(ctx, exec.CommandContext(ctx, "docker", "create", image))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command("docker", "rm", id).Run()
	cli := filepath.Join(dir, "sonobuoy")
	if _, err := command.Output(ctx, exec.CommandContext(ctx, "docker", "cp", id+":/sonobuoy", cli)); err != nil {
		t.Fatal(err)
	}
	version, err := command.Output(ctx, exec.CommandContext(ctx, cli, "version", "--short"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sonobuoy CLI from %s: %s", image, strings.TrimSpace(string(version)))
	return cli
}

// testLog writes each whole line to the test's log (the applier writes a line in parts).
type testLog struct {
	t    *testing.T
	part *[]byte
}

func newTestLog(t *testing.T) testLog { return testLog{t: t, part: new([]byte)} }

func (w testLog) Write(p []byte) (int, error) {
	*w.part = append(*w.part, p...)
	for {
		i := bytes.IndexByte(*w.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string((*w.part)[:i]))
		*w.part = (*w.part)[i+1:]
	}
}
