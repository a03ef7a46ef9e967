package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
)

// ServiceAccountDir is where Kubernetes mounts a pod's service account: token, ca.crt and
// namespace. client-go's rest.InClusterConfig reads the token and CA from here.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InClusterConfig is the REST configuration of the cluster this process runs in as a pod, with
// the pod's service account (rest.InClusterConfig). Its error says plainly what was looked for
// and not found: the KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT variables that the
// kubelet sets in every container, or the token under ServiceAccountDir (absent when the pod
// sets automountServiceAccountToken: false).
func InClusterConfig() (*rest.Config, error) {
	cfg, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("not running in a pod: KUBERNETES_SERVICE_HOST=%q and KUBERNETES_SERVICE_PORT=%q must both be set",
			os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	}
	if err != nil {
		return nil, fmt.Errorf("in a pod (KUBERNETES_SERVICE_HOST=%s) without a usable service account token: %w", os.Getenv("KUBERNETES_SERVICE_HOST"), err)
	}
	return cfg, nil
}

// InCluster reaches the cluster this process runs in as a pod, as the pod's service account
// (InClusterConfig), and lists its nodes. Its Name is the service account's user name,
// system:serviceaccount:<namespace>:<name>, so that an error about permissions says who lacked
// them. Delete never removes it; LoadImages and NodeExec do not work on it.
func InCluster(ctx context.Context) (*Cluster, error) {
	cfg, err := InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("reach the cluster in-cluster: %w", err)
	}
	c := &Cluster{Name: serviceAccountUser(cfg.BearerToken), REST: cfg}
	if c.Nodes, err = nodeNames(ctx, cfg); err != nil {
		return nil, fmt.Errorf("reach the cluster in-cluster as %s: %w", c.Name, err)
	}
	return c, nil
}

// serviceAccountUser reads the user name from the token's claims (the token is not verified:
// the name only labels messages), else from the mounted namespace file.
func serviceAccountUser(token string) string {
	if parts := strings.Split(strings.TrimSpace(token), "."); len(parts) == 3 {
		var claims struct {
			Sub string `json:"sub"`
		}
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(raw, &claims) == nil && claims.Sub != "" {
			return claims.Sub
		}
	}
	if ns, err := os.ReadFile(filepath.Join(ServiceAccountDir, "namespace")); err == nil {
		return "a service account of namespace " + strings.TrimSpace(string(ns))
	}
	return "the pod's service account"
}
