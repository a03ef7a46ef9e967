package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// envWithNamespaces is an Env on a fake API server holding the given namespaces of the suite's
// own, the first of them being Setup's node-probe namespace.
func envWithNamespaces(t *testing.T, names ...string) *Env {
	t.Helper()
	kube := fake.NewSimpleClientset()
	for i, n := range names {
		owner := "a-spec"
		if i == 0 {
			owner = "preflight"
		}
		if _, err := kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: namespaceLabels(owner)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &Env{Kube: kube, runnerNS: names[0], created: names}
}

// TestFinishDoesNotCountSetupsOwnNamespace is the regression test for a vendor's `make certify`
// that failed after every spec passed: the leftover check ran before Setup's node-probe
// namespace was removed, and named it.
func TestFinishDoesNotCountSetupsOwnNamespace(t *testing.T) {
	e := envWithNamespaces(t, "vendor-preflight-xprzn")
	if err := e.Finish(context.Background(), true); err != nil {
		t.Fatalf("Finish after a clean run: %v", err)
	}
	left, err := e.LeftoverNamespaces(context.Background())
	if err != nil || len(left) != 0 {
		t.Errorf("after Finish: %v %v, want nothing left", left, err)
	}
}

func TestFinishNamesWhatSpecsLeft(t *testing.T) {
	e := envWithNamespaces(t, "vendor-preflight-xprzn", "vendor-7h2kq")
	err := e.Finish(context.Background(), true)
	if err == nil || !strings.Contains(err.Error(), `["vendor-7h2kq"]`) || strings.Contains(err.Error(), "preflight") {
		t.Fatalf("Finish = %v, want it to name the spec's namespace alone", err)
	}
}

func TestFinishWithoutTheCheckStillRemovesSetupsNamespace(t *testing.T) {
	e := envWithNamespaces(t, "vendor-preflight-xprzn", "vendor-7h2kq")
	if err := e.Finish(context.Background(), false); err != nil {
		t.Fatalf("Finish(keep) = %v", err)
	}
	left, _ := e.LeftoverNamespaces(context.Background())
	if len(left) != 1 || left[0] != "vendor-7h2kq" {
		t.Errorf("left %v, want only the kept spec namespace", left)
	}
}

func TestSuiteNamespacesAdmitPrivilegedPods(t *testing.T) {
	l := namespaceLabels("preflight")
	if l[ownerLabel] != "preflight" || l["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("labels %v", l)
	}
}

func TestLabelValueFitsALabel(t *testing.T) {
	for in, want := range map[string]string{
		"PXE booting [bios] follows the procedure": "pxe-booting-bios-follows-the-procedure",
		"  --x--  ":               "x",
		strings.Repeat("ab ", 40): strings.Trim(strings.Repeat("ab-", 21)[:63], "-"),
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFinishWaitsForTheNamespacesSpecsLeftDeleting(t *testing.T) {
	e := envWithNamespaces(t, "vendor-preflight-xprzn", "vendor-7h2kq", "vendor-9zz2p")
	e.Config.Timeouts.Cleanup = time.Minute
	for _, ns := range []string{"vendor-7h2kq", "vendor-9zz2p"} {
		if err := e.deleteLater(context.Background(), ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Finish(context.Background(), true); err != nil {
		t.Fatalf("Finish after every spec started its namespace's deletion: %v", err)
	}
	if len(e.deleting) != 0 {
		t.Errorf("Finish kept %v to wait for", e.deleting)
	}
}

func TestLeftoversCountOnlyThisRunsNamespaces(t *testing.T) {
	e := envWithNamespaces(t, "vendor-preflight-xprzn")
	if _, err := e.Kube.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: "vendor-otherprocess", Labels: namespaceLabels("a-spec")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.Finish(context.Background(), true); err != nil {
		t.Errorf("Finish counted another process's namespace: %v", err)
	}
}

func TestLanesKeepServersAndMACsApart(t *testing.T) {
	one := &Env{Config: settings.Default()}
	if err := one.SetLane(1, 1); err != nil {
		t.Fatal(err)
	}
	if one.serverAddress().String() != "192.168.100.1/24" || one.clientAddress().String() != "192.168.100.10" || one.OwnMAC() != settings.DefaultMAC {
		t.Errorf("one process: server %s, client %s, MAC %s; want the documented ones", one.serverAddress(), one.clientAddress(), one.OwnMAC())
	}
	seen := map[string]bool{}
	for p := 1; p <= maxLanes; p++ {
		e := &Env{Config: settings.Default()}
		if err := e.SetLane(p, maxLanes); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{e.serverAddress().Addr().String(), e.clientAddress().String(), e.OwnMAC(), e.UnlistedMAC()} {
			if seen[v] {
				t.Errorf("process %d reuses %s", p, v)
			}
			seen[v] = true
		}
		if e.OwnMAC() == settings.DefaultMAC || slices.Contains(e.OwnAllowList(), settings.DefaultMAC) {
			t.Errorf("process %d of %d uses the procedure's MAC outside the procedure", p, maxLanes)
		}
		if !pxeNetwork.Contains(e.clientAddress()) || !pxeNetwork.Contains(e.serverAddress().Addr()) {
			t.Errorf("process %d: addresses outside %s", p, pxeNetwork)
		}
	}
	if err := (&Env{}).SetLane(maxLanes+1, maxLanes+1); err == nil {
		t.Error("SetLane accepted more processes than the PXE network has room for")
	}
}
