package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// NodeExec runs argv on a node of a kind cluster with `docker exec` and returns its standard
// output; a failure is a *command.Error with the `docker exec` line and what the command
// printed. It satisfies framework/nodeexec's Runner, for the kind lab's setup only: the suite
// reaches nodes through the API (nodeexec.PodRunner), as on any vendor's cluster.
func (c *Cluster) NodeExec(ctx context.Context, node string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("exec on node %s: empty command", node)
	}
	n, err := c.node(node)
	if err != nil {
		return nil, fmt.Errorf("exec on node %s: %w", node, err)
	}
	var stdout, stderr bytes.Buffer
	err = n.CommandContext(ctx, argv[0], argv[1:]...).SetStdout(&stdout).SetStderr(&stderr).Run()
	if err != nil {
		cmdErr := &command.Error{Command: command.Line(argv...), Output: stdout.String() + stderr.String(), Err: err}
		var runErr *kindexec.RunError
		if errors.As(err, &runErr) {
			// kind's error holds the whole `docker exec` line: the one to paste.
			cmdErr.Command, cmdErr.Err = command.Line(runErr.Command...), runErr.Inner
		}
		return stdout.Bytes(), fmt.Errorf("exec on node %s: %w", node, cmdErr)
	}
	return stdout.Bytes(), nil
}

// LoadImages copies local Docker images into the containerd (k8s.io namespace) of every node,
// skipping nodes that hold the same image ID already. Nothing is pulled: the images must be in
// the local engine, and pods should use imagePullPolicy IfNotPresent or Never.
func (c *Cluster) LoadImages(ctx context.Context, images ...string) error {
	if c.provider == nil {
		return fmt.Errorf("load images into %s: not a kind cluster on this host", c.Name)
	}
	if len(images) == 0 {
		return nil
	}
	ids := map[string]string{}
	for _, img := range images {
		out, err := dockerOutput(ctx, "image", "inspect", "--format", "{{.Id}}", img)
		if err != nil {
			return fmt.Errorf("load image %s: %w", img, err)
		}
		ids[img] = strings.TrimSpace(string(out))
	}
	ns, err := c.provider.ListNodes(c.Name)
	if err != nil {
		return fmt.Errorf("load images into %s: list nodes: %w", c.Name, err)
	}
	tar, err := os.CreateTemp("", "pxec-images-*.tar")
	if err != nil {
		return err
	}
	tar.Close()
	defer os.Remove(tar.Name())
	saved := false
	for _, n := range ns {
		var missing []string
		for _, img := range images {
			// The node looks the image up by name: absent, or another ID, means the tag is stale there.
			if id, err := nodeutils.ImageID(n, img); err != nil || id != ids[img] {
				missing = append(missing, img)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if !saved {
			// One archive of all requested images, written once and read per node.
			if _, err := dockerOutput(ctx, append([]string{"save", "-o", tar.Name()}, images...)...); err != nil {
				return fmt.Errorf("load images %v: %w", images, err)
			}
			saved = true
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f, err := os.Open(tar.Name())
		if err != nil {
			return err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("load images %v into node %s: %w", images, n, withKindOutput(err))
		}
	}
	return nil
}

// writeRegistryHosts writes, on every node, the hosts.toml of each registry host (sorted),
// before anything is pulled; containerd reads the directory at each pull.
func (c *Cluster) writeRegistryHosts(ctx context.Context, registries map[string]string) error {
	hosts := make([]string, 0, len(registries))
	for h := range registries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, n := range c.Nodes {
		for _, h := range hosts {
			dir := registryHostsDir + "/" + h
			// The directory and the file's text travel as arguments: nothing to quote.
			if _, err := c.NodeExec(ctx, n, "sh", "-c", `mkdir -p "$1" && printf '%s' "$2" >"$1/hosts.toml"`, "sh", dir, registryHosts(registries[h])); err != nil {
				return fmt.Errorf("send node %s's pulls from %s to %s: %w", n, h, registries[h], err)
			}
		}
	}
	return nil
}

// dockerOutput runs docker with args; a failure is a *command.Error.
func dockerOutput(ctx context.Context, args ...string) ([]byte, error) {
	return command.Output(ctx, exec.CommandContext(ctx, "docker", args...))
}
