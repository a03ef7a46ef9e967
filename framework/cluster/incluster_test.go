package cluster

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestInClusterConfigSaysWhatItLookedFor(t *testing.T) {
	cases := []struct {
		name, host, port string
		want             []string
	}{
		{"outside a pod", "", "", []string{"not running in a pod", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}},
		{"port unset", "10.96.0.1", "", []string{"not running in a pod", `KUBERNETES_SERVICE_HOST="10.96.0.1"`, `KUBERNETES_SERVICE_PORT=""`}},
		// This machine is no pod: the token Kubernetes would mount is absent.
		{"no token", "10.96.0.1", "443", []string{"without a usable service account token", ServiceAccountDir + "/token"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", tc.host)
			t.Setenv("KUBERNETES_SERVICE_PORT", tc.port)
			cfg, err := InClusterConfig()
			if err == nil {
				t.Fatalf("InClusterConfig = %v, nil; want an error (is this test running in a pod?)", cfg.Host)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestServiceAccountUserReadsTheTokenSubject(t *testing.T) {
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://kubernetes.default.svc","sub":"system:serviceaccount:sonobuoy:pxe-conformance"}`))
	if got := serviceAccountUser("eyJhbGciOiJSUzI1NiJ9." + claims + ".c2ln\n"); got != "system:serviceaccount:sonobuoy:pxe-conformance" {
		t.Errorf("serviceAccountUser = %q, want the token's subject", got)
	}
	if got := serviceAccountUser("not-a-jwt"); !strings.Contains(got, "service account") {
		t.Errorf("serviceAccountUser of an opaque token = %q, want a plain description", got)
	}
}
