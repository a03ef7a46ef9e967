package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

func TestCreateOptionErrorsNameFieldAndValue(t *testing.T) {
	cases := []struct {
		name string
		opt  CreateOption
		want []string
	}{
		{"empty node image", WithNodeImage(""), []string{"node image", `""`}},
		{"negative workers", WithWorkers(-1), []string{"workers", "-1"}},
		{"too many workers", WithWorkers(11), []string{"workers", "11"}},
		{"empty kubeconfig", WithKubeconfig(""), []string{"kubeconfig", `""`}},
		{"zero ready timeout", WithReadyTimeout(0), []string{"ready timeout", "0s"}},
		{"bad node role", WithConfig(v1alpha4.Cluster{Nodes: []v1alpha4.Node{{Role: "master"}}}), []string{"nodes[0].role", `"master"`}},
		{"registry host with a path", WithRegistryEndpoint("127.0.0.1:5000/kubevirt", "http://172.18.0.1:5000"), []string{"registry host", `"127.0.0.1:5000/kubevirt"`}},
		{"registry endpoint without scheme", WithRegistryEndpoint("127.0.0.1:5000", "172.18.0.1:5000"), []string{"registry endpoint for 127.0.0.1:5000", `"172.18.0.1:5000"`}},
		{"registry endpoint with a path", WithRegistryEndpoint("127.0.0.1:5000", "http://172.18.0.1:5000/v2"), []string{"registry endpoint", `"http://172.18.0.1:5000/v2"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := defaultCreateOptions()
			err := tc.opt.apply(&o)
			if err == nil {
				t.Fatal("option accepted, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestCreateKindRejectsBadOptionsBeforeTouchingDocker(t *testing.T) {
	cases := []struct {
		name    string
		cluster string
		opts    []CreateOption
		want    string
	}{
		{"upper-case name", "PXEC", nil, `"PXEC"`},
		{"empty name", "", nil, `cluster name: ""`},
		{"bad option", "pxec-ok", []CreateOption{WithWorkers(-3)}, "workers: -3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := CreateKind(context.Background(), tc.cluster, tc.opts...)
			if err == nil || c != nil {
				t.Fatalf("CreateKind = %v, %v; want nil and an error", c, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestOptionsApplyTheirValues(t *testing.T) {
	o := defaultCreateOptions()
	for _, opt := range []CreateOption{WithNodeImage("pxec.local/x:1"), WithWorkers(2), WithKVM(false), WithReadyTimeout(time.Minute), WithKubeconfig("/tmp/k")} {
		if err := opt.apply(&o); err != nil {
			t.Fatal(err)
		}
	}
	if o.nodeImage != "pxec.local/x:1" || o.workers != 2 || o.kvm == nil || *o.kvm || o.readyTimeout != time.Minute || o.kubeconfig != "/tmp/k" {
		t.Errorf("options not applied: %+v", o)
	}
}

func TestDeleteLeavesClustersItDidNotCreate(t *testing.T) {
	c := &Cluster{Name: "someone-elses"}
	if err := c.Delete(context.Background()); err != nil {
		t.Fatalf("Delete of a cluster not created here: %v", err)
	}
}
