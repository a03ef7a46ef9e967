package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKubeconfigBracketsOnlyIPv6Hosts(t *testing.T) {
	cases := []struct{ host, port, server string }{
		{"10.96.0.1", "443", "https://10.96.0.1:443"},
		{"fd00:10:96::1", "443", "https://[fd00:10:96::1]:443"},
		{"[fd00:10:96::1]", "6443", "https://[fd00:10:96::1]:6443"},
		{"api.example", "6443", "https://api.example:6443"},
	}
	for _, tc := range cases {
		raw, err := renderKubeconfig(tc.host, tc.port, []byte("CA"), []byte("tok"))
		if err != nil {
			t.Fatal(err)
		}
		var kc kubeconfig
		if err := json.Unmarshal(raw, &kc); err != nil {
			t.Fatal(err)
		}
		if got := kc.Clusters[0].Cluster["server"]; got != tc.server {
			t.Errorf("host %s: server %v, want %s", tc.host, got, tc.server)
		}
		if kc.Users[0].User["token"] != "tok" || kc.Clusters[0].Cluster["certificate-authority-data"] != "Q0E=" {
			t.Errorf("token or CA not carried: %s", raw)
		}
	}
	if _, err := renderKubeconfig("10.96.0.1", "443", []byte("CA"), nil); err == nil {
		t.Error("empty token accepted")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const kindnet = `{"cniVersion":"0.4.0","name":"kindnet","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`

func TestPickDefaultNetworkSkipsMultusAndNonConfigs(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr string
	}{
		{"kind's conflist", map[string]string{"10-kindnet.conflist": kindnet}, "10-kindnet.conflist", ""},
		{"first by name wins", map[string]string{"20-b.conf": `{"cniVersion":"0.3.1","type":"b"}`, "10-a.conflist": kindnet}, "10-a.conflist", ""},
		{"our own and another Multus skipped", map[string]string{"00-multus.conf": `{"type":"multus"}`, "05-old-multus.conf": `{"cniVersion":"0.3.1","type":"multus"}`, "10-kindnet.conflist": kindnet}, "10-kindnet.conflist", ""},
		{"junk skipped", map[string]string{"01-notes.json": `{"hello":1}`, "10-kindnet.conflist": kindnet}, "10-kindnet.conflist", ""},
		{"nothing yet", map[string]string{"README": "x"}, "", "waiting for the default network"},
		{"default sorts before ours", map[string]string{"00-aaa.conflist": kindnet}, "", "sorts before 00-multus.conf"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tc.files)
			p, _, err := pickDefaultNetwork(dir, "00-multus.conf")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(p) != tc.want {
				t.Errorf("picked %s, want %s", filepath.Base(p), tc.want)
			}
		})
	}
}

func TestMultusConfDelegatesWithTheDefaultNetworksCapabilities(t *testing.T) {
	raw, err := renderMultusConf([]byte(kindnet), "/etc/cni/net.d/multus.d/multus.kubeconfig", "/opt/cni/bin")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		CNIVersion   string           `json:"cniVersion"`
		Type         string           `json:"type"`
		Kubeconfig   string           `json:"kubeconfig"`
		Capabilities map[string]bool  `json:"capabilities"`
		Delegates    []map[string]any `json:"delegates"`
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Type != "multus" || conf.CNIVersion != "0.4.0" || conf.Kubeconfig != "/etc/cni/net.d/multus.d/multus.kubeconfig" {
		t.Errorf("conf %s", raw)
	}
	if !conf.Capabilities["portMappings"] {
		t.Errorf("portMappings capability lost: %s", raw)
	}
	if len(conf.Delegates) != 1 || conf.Delegates[0]["name"] != "kindnet" {
		t.Errorf("delegates %v", conf.Delegates)
	}
	if _, err := renderMultusConf([]byte(`{"type":"bridge"}`), "k", "b"); err == nil {
		t.Error("default network without cniVersion accepted")
	}
}

// testConfig lays out a fake node under a temporary host root and an image source directory.
func testConfig(t *testing.T, owner string, images map[string]string) config {
	t.Helper()
	root := t.TempDir()
	src := t.TempDir()
	writeFiles(t, src, images)
	for _, d := range []string{"/opt/cni/bin", "/etc/cni/net.d"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return config{hostRoot: root, binDir: "/opt/cni/bin", confDir: "/etc/cni/net.d", source: src, owner: owner,
		readyFile: filepath.Join(t.TempDir(), "ready"), confName: "00-multus.conf", interval: 20 * time.Millisecond}
}

func readHost(t *testing.T, c config, p string) string {
	t.Helper()
	b, err := os.ReadFile(c.host(p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPluginsInstallOnlyWhatIsAbsentAndCleanupRemovesOnlyThat(t *testing.T) {
	c := testConfig(t, "cni-plugins", map[string]string{"bridge": "our bridge", "static": "our static"})
	writeFiles(t, c.hostRoot, map[string]string{"/opt/cni/bin/bridge": "node's bridge"})
	st, err := loadState(c.host(c.statePath()))
	if err != nil {
		t.Fatal(err)
	}
	if err := installBinaries(c, st, []string{"bridge", "static"}); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, c, "/opt/cni/bin/bridge"); got != "node's bridge" {
		t.Errorf("node's bridge replaced by %q", got)
	}
	if got := readHost(t, c, "/opt/cni/bin/static"); got != "our static" {
		t.Errorf("static is %q", got)
	}

	// A second run (a restarted pod) updates our own copy when the image changed.
	writeFiles(t, c.source, map[string]string{"static": "newer static"})
	st, _ = loadState(c.host(c.statePath()))
	if err := installBinaries(c, st, []string{"bridge", "static"}); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, c, "/opt/cni/bin/static"); got != "newer static" {
		t.Errorf("our static not updated: %q", got)
	}

	if err := cleanup(c); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.host("/opt/cni/bin/static")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left our static: %v", err)
	}
	if got := readHost(t, c, "/opt/cni/bin/bridge"); got != "node's bridge" {
		t.Errorf("cleanup touched the node's bridge: %q", got)
	}
	if _, err := os.Stat(c.host(c.statePath())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left its record: %v", err)
	}
}

func TestCleanupKeepsFilesChangedSinceInstall(t *testing.T) {
	c := testConfig(t, "cni-plugins", map[string]string{"tuning": "ours"})
	st, _ := loadState(c.host(c.statePath()))
	if err := installBinaries(c, st, []string{"tuning"}); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, c.hostRoot, map[string]string{"/opt/cni/bin/tuning": "someone upgraded it"})
	if err := cleanup(c); err != nil {
		t.Fatal(err)
	}
	if got := readHost(t, c, "/opt/cni/bin/tuning"); got != "someone upgraded it" {
		t.Errorf("cleanup removed or changed a file that is no longer ours: %q", got)
	}
}

func TestMultusWritesConfigUntilStoppedThenRemovesIt(t *testing.T) {
	c := testConfig(t, "multus", map[string]string{"multus": "multus binary"})
	c.tokenDir = t.TempDir()
	writeFiles(t, c.tokenDir, map[string]string{"token": "tok-1\n", "ca.crt": "CA"})
	writeFiles(t, c.hostRoot, map[string]string{"/etc/cni/net.d/10-kindnet.conflist": kindnet})
	api := func() (string, string, error) { return "10.96.0.1", "443", nil }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runMultus(ctx, c, api) }()
	waitFor(t, func() bool { _, err := os.Stat(c.readyFile); return err == nil })

	conf := readHost(t, c, "/etc/cni/net.d/00-multus.conf")
	if !strings.Contains(conf, `"type": "multus"`) || !strings.Contains(conf, `"kindnet"`) {
		t.Errorf("conf %s", conf)
	}
	if kc := readHost(t, c, "/etc/cni/net.d/multus.d/multus.kubeconfig"); !strings.Contains(kc, `"https://10.96.0.1:443"`) || !strings.Contains(kc, "tok-1") {
		t.Errorf("kubeconfig %s", kc)
	}
	if readHost(t, c, "/opt/cni/bin/multus") != "multus binary" {
		t.Errorf("multus binary not installed")
	}

	// The token rotates: the kubeconfig follows.
	writeFiles(t, c.tokenDir, map[string]string{"token": "tok-2\n"})
	waitFor(t, func() bool {
		b, _ := os.ReadFile(c.host("/etc/cni/net.d/multus.d/multus.kubeconfig"))
		return strings.Contains(string(b), "tok-2")
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runMultus: %v", err)
	}
	for _, p := range []string{"/etc/cni/net.d/00-multus.conf", "/etc/cni/net.d/multus.d/multus.kubeconfig", c.readyFile} {
		full := p
		if strings.HasPrefix(p, "/etc") {
			full = c.host(p)
		}
		if _, err := os.Stat(full); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after stop: %v", p, err)
		}
	}
	if readHost(t, c, "/etc/cni/net.d/10-kindnet.conflist") != kindnet {
		t.Errorf("default network's config changed")
	}
	if err := cleanup(c); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/opt/cni/bin/multus", "/etc/cni/net.d/multus.d"} {
		if _, err := os.Stat(c.host(p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup left %s: %v", p, err)
		}
	}
}

func TestMultusRefusesConfigThatIsNotOurs(t *testing.T) {
	c := testConfig(t, "multus", map[string]string{"multus": "m"})
	c.tokenDir = t.TempDir()
	writeFiles(t, c.tokenDir, map[string]string{"token": "tok", "ca.crt": "CA"})
	writeFiles(t, c.hostRoot, map[string]string{
		"/etc/cni/net.d/10-kindnet.conflist":        kindnet,
		"/etc/cni/net.d/multus.d/multus.kubeconfig": "someone else's",
	})
	st, _ := loadState(c.host(c.statePath()))
	err := syncMultus(c, st, func() (string, string, error) { return "10.96.0.1", "443", nil },
		"/etc/cni/net.d/00-multus.conf", "/etc/cni/net.d/multus.d/multus.kubeconfig")
	if err == nil || !strings.Contains(err.Error(), "not ours") {
		t.Fatalf("syncMultus = %v, want a refusal", err)
	}
	if readHost(t, c, "/etc/cni/net.d/multus.d/multus.kubeconfig") != "someone else's" {
		t.Errorf("someone else's kubeconfig was overwritten")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
