package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSettingsExitTwoNamingKeyAndValue: settings the suite would refuse end the command
// with exit status 2 before it reaches any cluster, naming the key and the value.
func TestBadSettingsExitTwoNamingKeyAndValue(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", "")
	t.Setenv("PXEC_KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod, whatever runs the test
	t.Setenv("ARTIFACTS", t.TempDir())
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a bad value", []string{"--pxec.kubeconfig=" + kubeconfig, "--pxec.mac=de:00"}, `mac "de:00": not a MAC address`},
		{"no cluster", nil, "no cluster: no kubeconfig (--pxec.kubeconfig, PXEC_KUBECONFIG and KUBECONFIG are unset), and no in-cluster service account (not running in a pod: KUBERNETES_SERVICE_HOST"},
		{"an unknown flag", []string{"--pxec.bridges=br1"}, "flag provided but not defined: -pxec.bridges"},
		{"a stray argument", []string{"--pxec.kubeconfig=" + kubeconfig, "now"}, `unexpected arguments ["now"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != exitBadConfig {
				t.Errorf("exit %d, want %d; stderr %s", code, exitBadConfig, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Errorf("stdout %q stderr %q: want no check lines and %q", stdout.String(), stderr.String(), tt.want)
			}
		})
	}
}
