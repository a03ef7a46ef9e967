//go:build cluster

// This test needs a Docker engine and the offline node and component images: run it with
// `go test -tags cluster ./ci/preflight` (after `make images`), not with `make test`.

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pxe-conformance/pxe-conformance/framework/cluster"
	"github.com/pxe-conformance/pxe-conformance/framework/multus"
	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

func skipUnless(t *testing.T, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", reason)
	}
	t.Skip(reason)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestPreflightNamesAMissingBridgeAndAMissingMultus brings up a two-node kind cluster from the
// offline images with the CNI plugins, Multus and br1 on the control plane only, and runs the
// command as `make preflight` does: the bridge check fails naming the worker, and the command
// exits 1. Then Multus goes, and the Multus check fails too. Either way the probe namespace is
// gone when the command returns.
func TestPreflightNamesAMissingBridgeAndAMissingMultus(t *testing.T) {
	node := os.Getenv("PXEC_NODE_IMAGE")
	if node == "" {
		node = cluster.DefaultNodeImage
	}
	images := []string{multus.DefaultMultusImage, multus.DefaultCNIPluginsImage, settings.DefaultPXEServerImage}
	skipUnless(t, exec.Command("docker", "info").Run() == nil, "the Docker engine does not answer (ci/engine-up.sh starts it)")
	for _, img := range append([]string{node}, images...) {
		skipUnless(t, exec.Command("docker", "image", "inspect", img).Run() == nil,
			"image "+img+" is missing (go run ./ci/imagebuilder)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tw := testWriter{t}

	var b [3]byte
	_, _ = rand.Read(b[:])
	c, err := cluster.CreateKind(ctx, "pxec-pf-"+hex.EncodeToString(b[:]), cluster.WithNodeImage(node), cluster.WithWorkers(1), cluster.WithLog(tw))
	if c != nil {
		t.Cleanup(func() {
			if err := c.Delete(context.Background()); err != nil {
				t.Errorf("delete cluster: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadImages(ctx, images...); err != nil {
		t.Fatal(err)
	}
	plugins, err := multus.InstallCNIPlugins(ctx, c.REST, multus.WithLog(tw))
	if plugins != nil {
		t.Cleanup(func() { _ = plugins.Uninstall(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	mts, err := multus.InstallMultus(ctx, c.REST, multus.WithLog(tw))
	if mts != nil {
		t.Cleanup(func() { _ = mts.Uninstall(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}
	// br1 on the first node only: the other lacks it.
	withBridge, without := c.Nodes[0], c.Nodes[1]
	br, err := network.EnsureBridge(ctx, c, withBridge, network.DefaultBridge)
	if br != nil {
		t.Cleanup(func() { _ = br.Delete(context.Background()) })
	}
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("PXEC_KUBECONFIG", c.Kubeconfig)
	t.Setenv("ARTIFACTS", t.TempDir())
	preflight := func() (lines string, code int) {
		var stdout, stderr bytes.Buffer
		code = run(ctx, nil, &stdout, &stderr)
		t.Logf("preflight exit %d:\n%s%s", code, stdout.String(), stderr.String())
		return stdout.String(), code
	}
	wantLine := func(lines, pattern string) {
		t.Helper()
		if !regexp.MustCompile(`(?m)` + pattern).MatchString(lines) {
			t.Errorf("no line matching %s", pattern)
		}
	}

	lines, code := preflight()
	if code != exitFail {
		t.Errorf("exit %d with the bridge missing on %s, want %d", code, without, exitFail)
	}
	wantLine(lines, `^FAIL  bridge +bridge "br1" absent on node `+regexp.QuoteMeta(without)+`\b`)
	wantLine(lines, `^PASS  multus `)
	wantLine(lines, `^PASS  cni-plugins `)
	noProbeNamespace(ctx, t, c)

	if err := mts.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	lines, code = preflight()
	if code != exitFail {
		t.Errorf("exit %d without Multus, want %d", code, exitFail)
	}
	wantLine(lines, `^FAIL  multus +no Multus DaemonSet in any namespace — `)
	wantLine(lines, `^FAIL  bridge +bridge "br1" absent on node `+regexp.QuoteMeta(without)+`\b`)
	noProbeNamespace(ctx, t, c)
}

// noProbeNamespace fails when a preflight namespace of the command's is left.
func noProbeNamespace(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	t.Helper()
	kube, err := kubernetes.NewForConfig(c.REST)
	if err != nil {
		t.Fatal(err)
	}
	list, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list namespaces: %v", err)
	}
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, "pxec-preflight-") {
			t.Errorf("probe namespace %s left behind", ns.Name)
		}
	}
}
