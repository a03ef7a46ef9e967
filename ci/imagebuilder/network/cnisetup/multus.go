package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// apiServer returns the API server's host and port as a pod sees them.
type apiServer func() (host, port string, err error)

func envAPIServer() (string, string, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return "", "", errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
	}
	return host, port, nil
}

// runMultus installs the multus binary, then until ctx ends keeps Multus's kubeconfig (the
// service account token rotates) and its CNI config (delegating to the node's default
// network, whose config may be rewritten) current. On the way out it removes both: the token
// in the kubeconfig dies with this pod, and a Multus config that cannot reach the API server
// would fail every new pod on the node. The binary stays for cleanup.
func runMultus(ctx context.Context, c config, api apiServer) error {
	st, err := loadState(c.host(c.statePath()))
	if err != nil {
		return err
	}
	if err := installBinaries(c, st, []string{"multus"}); err != nil {
		return err
	}
	confPath := filepath.Join(c.confDir, c.confName)
	kubeconfigPath := filepath.Join(c.confDir, "multus.d", "multus.kubeconfig")
	ready := false
	lastErr := ""
	for {
		err := syncMultus(c, st, api, confPath, kubeconfigPath)
		switch {
		case err != nil && err.Error() != lastErr:
			logf("not ready: %v", err)
			lastErr = err.Error()
		case err == nil && !ready:
			if werr := os.WriteFile(c.readyFile, nil, 0o644); werr != nil {
				return werr
			}
			ready = true
			lastErr = ""
			logf("ready: %s delegates to the node's default network", confPath)
		}
		select {
		case <-ctx.Done():
			logf("stopping: removing %s and %s", confPath, kubeconfigPath)
			_ = os.Remove(c.readyFile)
			return errors.Join(removeOurs(c, st, confPath), removeOurs(c, st, kubeconfigPath))
		case <-time.After(c.interval):
		}
	}
}

// syncMultus writes the kubeconfig and then the CNI config when either differs from what
// they should be now.
func syncMultus(c config, st *state, api apiServer, confPath, kubeconfigPath string) error {
	host, port, err := api()
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(c.tokenDir, "ca.crt"))
	if err != nil {
		return fmt.Errorf("read service account CA: %w", err)
	}
	token, err := os.ReadFile(filepath.Join(c.tokenDir, "token"))
	if err != nil {
		return fmt.Errorf("read service account token: %w", err)
	}
	kc, err := renderKubeconfig(host, port, ca, bytes.TrimSpace(token))
	if err != nil {
		return err
	}
	if err := ensureDir(c, st, filepath.Dir(kubeconfigPath)); err != nil {
		return err
	}
	if err := writeOurs(c, st, kubeconfigPath, kc, 0o600); err != nil {
		return err
	}
	masterPath, master, err := pickDefaultNetwork(c.host(c.confDir), c.confName)
	if err != nil {
		return err
	}
	conf, err := renderMultusConf(master, kubeconfigPath, c.binDir)
	if err != nil {
		return fmt.Errorf("delegate to %s: %w", filepath.Join(c.confDir, filepath.Base(masterPath)), err)
	}
	return writeOurs(c, st, confPath, conf, 0o644)
}

// ensureDir creates the node directory p when absent, recording it as ours.
func ensureDir(c config, st *state, p string) error {
	if _, err := os.Stat(c.host(p)); err == nil {
		return nil
	}
	if err := os.Mkdir(c.host(p), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", p, err)
	}
	return st.record(entry{Path: p, Dir: true})
}

// writeOurs writes data to node path p when it differs from what is there, unless the file
// there is someone else's, which is refused.
func writeOurs(c config, st *state, p string, data []byte, mode fs.FileMode) error {
	have, err := fileSHA256(c.host(p))
	e, ours := st.find(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", p, err)
	case !ours:
		return fmt.Errorf("%s already exists and is not ours: another Multus installation owns this node", p)
	case have == bytesSHA256(data):
		return nil
	case have != e.SHA256:
		return fmt.Errorf("%s changed since we wrote it: another Multus installation writes to this node", p)
	}
	if err := writeAtomic(c.host(p), data, mode); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := st.record(entry{Path: p, SHA256: bytesSHA256(data)}); err != nil {
		return fmt.Errorf("record %s: %w", p, err)
	}
	logf("wrote %s", p)
	return nil
}

// kubeconfig is the JSON form of a kubeconfig file; client-go reads JSON as well as YAML, and
// JSON needs no quoting rules of our own for the token.
type kubeconfig struct {
	APIVersion     string        `json:"apiVersion"`
	Kind           string        `json:"kind"`
	Clusters       []namedObject `json:"clusters"`
	Users          []namedObject `json:"users"`
	Contexts       []namedObject `json:"contexts"`
	CurrentContext string        `json:"current-context"`
}

type namedObject struct {
	Name    string         `json:"name"`
	Cluster map[string]any `json:"cluster,omitempty"`
	User    map[string]any `json:"user,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

// renderKubeconfig writes a kubeconfig for the API server at host:port. Only an IPv6 host is
// bracketed: https://[10.96.0.1]:443, as Multus's own entrypoint writes, is refused by Go's
// URL parser.
func renderKubeconfig(host, port string, ca, token []byte) ([]byte, error) {
	if host == "" || port == "" {
		return nil, errors.New("API server host or port is empty")
	}
	if len(token) == 0 {
		return nil, errors.New("service account token is empty")
	}
	server := "https://" + net.JoinHostPort(strings.Trim(host, "[]"), port)
	kc := kubeconfig{
		APIVersion: "v1",
		Kind:       "Config",
		Clusters: []namedObject{{Name: "local", Cluster: map[string]any{
			"server":                     server,
			"certificate-authority-data": base64.StdEncoding.EncodeToString(ca),
		}}},
		Users:          []namedObject{{Name: "multus", User: map[string]any{"token": string(token)}}},
		Contexts:       []namedObject{{Name: "multus", Context: map[string]any{"cluster": "local", "user": "multus"}}},
		CurrentContext: "multus",
	}
	return json.MarshalIndent(kc, "", "  ")
}

// pickDefaultNetwork returns the CNI config the container runtime would use if Multus were
// not there: the first, by name, of the .conf, .conflist and .json files in dir, leaving out
// Multus configs (ours or another's). It refuses a default network whose name sorts before
// ours, since the runtime would then never call Multus.
func pickDefaultNetwork(dir, ours string) (string, []byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("read CNI config directory: %w", err)
	}
	var names []string
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			if !e.IsDir() && e.Name() != ours && !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return "", nil, err
		}
		var probe struct {
			Type    string            `json:"type"`
			Plugins []json.RawMessage `json:"plugins"`
		}
		if json.Unmarshal(raw, &probe) != nil || (probe.Type == "" && len(probe.Plugins) == 0) {
			logf("skipped %s: not a CNI config", n)
			continue
		}
		if probe.Type == "multus" {
			continue
		}
		if n < ours {
			return "", nil, fmt.Errorf("the default network's config %s sorts before %s, so the runtime would not call Multus; rerun with a --conf-name that sorts first", n, ours)
		}
		return filepath.Join(dir, n), raw, nil
	}
	return "", nil, errors.New("waiting for the default network's CNI config (no .conf or .conflist yet)")
}

// renderMultusConf builds the thin plugin's config: Multus, talking to the API server with
// kubeconfig, with the default network's config (a single plugin or a list) as its one
// delegate and the capabilities that network's plugins declare, so port mappings and the like
// still reach them.
func renderMultusConf(master []byte, kubeconfigPath, binDir string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(master, &m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	version, _ := m["cniVersion"].(string)
	if version == "" {
		return nil, errors.New("it declares no cniVersion")
	}
	caps := map[string]bool{}
	collect := func(plugin any) {
		p, _ := plugin.(map[string]any)
		c, _ := p["capabilities"].(map[string]any)
		for k, v := range c {
			if on, _ := v.(bool); on {
				caps[k] = true
			}
		}
	}
	if list, ok := m["plugins"].([]any); ok {
		for _, p := range list {
			collect(p)
		}
	} else {
		collect(m)
	}
	conf := map[string]any{
		"cniVersion":  version,
		"name":        "multus-cni-network",
		"type":        "multus",
		"kubeconfig":  kubeconfigPath,
		"binDir":      binDir,
		"logLevel":    "error",
		"logToStderr": true,
		"delegates":   []any{m},
	}
	if len(caps) > 0 {
		conf["capabilities"] = caps
	}
	return json.MarshalIndent(conf, "", "  ")
}
