package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/pxe-conformance/pxe-conformance/framework/network"
	"github.com/pxe-conformance/pxe-conformance/framework/pxe"
	"github.com/pxe-conformance/pxe-conformance/framework/vnc"
)

// SaveScreenshot writes the boot screen to dir/boot-screen.png and returns the path.
func (s *Spec) SaveScreenshot(dir string) (string, error) {
	if s.Screenshot == nil {
		return "", errors.New("no screenshot taken")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "boot-screen.png")
	return path, vnc.WritePNG(path, s.Screenshot)
}

// SaveEvents writes the PXE server's events to dir/pxe-server-events.json (without the guest's
// password), where the results page finds them for its timeline.
func (s *Spec) SaveEvents(dir string, events []pxe.Event) error {
	b, err := json.MarshalIndent(events, "", "  ")
	if err != nil {
		return fmt.Errorf("PXE server events: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "pxe-server-events.json"), s.env.redact(b), 0o644)
}

// redactedPassword stands for the guest's password in what the suite writes.
const redactedPassword = "<guest password>"

// redact returns b with the run's guest password replaced.
func (e *Env) redact(b []byte) []byte {
	if e.Password == "" {
		return b
	}
	return bytes.ReplaceAll(b, []byte(e.Password), []byte(redactedPassword))
}

// CollectArtifacts writes what a reader of a failed spec needs into dir: the console
// transcript, the boot screen, the VMI and the namespace's pods as YAML with their logs, the
// namespace's events, the PXE server's events and log, and the bridges' state on the nodes,
// each without the guest's password. It goes on past a failing item and returns every error
// joined.
func (s *Spec) CollectArtifacts(ctx context.Context, dir string) error {
	// An interrupted run still collects: the caller's context may be the one cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.env.Config.Timeouts.Cleanup)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var errs []error
	// The guest's password is in the PXE server's pod (the kernel command line it serves) and
	// can be in its log and the console; the folder goes into the results bundle, which a
	// vendor hands on, so every file is written without it.
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), s.env.redact(data), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	writeYAML := func(name string, obj any) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		write(name, b)
	}
	if s.Guest != nil && s.Guest.Console() != nil {
		write("console.log", s.Guest.Console().Transcript())
	}
	if s.Screenshot != nil {
		if _, err := s.SaveScreenshot(dir); err != nil {
			errs = append(errs, err)
		}
	}
	write("timings.txt", []byte(s.Timings.String()+"\n"))
	if s.Guest != nil {
		if got, err := s.env.Virt.VirtualMachineInstance(s.Namespace).Get(ctx, s.Guest.VMI.Name, metav1.GetOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("get VMI: %w", err))
		} else {
			writeYAML("vmi.yaml", got)
		}
	}
	pods, err := s.env.Kube.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		errs = append(errs, fmt.Errorf("list pods: %w", err))
	} else {
		for _, p := range pods.Items {
			writeYAML("pod-"+p.Name+".yaml", p)
			// Init containers too: virt-launcher's guest-console-log is a sidecar among them.
			for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
				logs, err := s.env.Kube.CoreV1().Pods(s.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
				if err != nil {
					errs = append(errs, fmt.Errorf("logs of %s/%s: %w", p.Name, c.Name, err))
					continue
				}
				write("pod-"+p.Name+"-"+c.Name+".log", logs)
			}
		}
	}
	if events, err := s.env.Kube.CoreV1().Events(s.Namespace).List(ctx, metav1.ListOptions{}); err != nil {
		errs = append(errs, fmt.Errorf("list events: %w", err))
	} else {
		sort.Slice(events.Items, func(i, j int) bool {
			return events.Items[i].LastTimestamp.Before(&events.Items[j].LastTimestamp)
		})
		var b strings.Builder
		for _, e := range events.Items {
			fmt.Fprintf(&b, "%s %s %s/%s %s: %s\n", e.LastTimestamp.Format(time.RFC3339), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
		write("events.txt", []byte(b.String()))
	}
	if s.PXE != nil {
		// A server that is gone still has its events read back from its log.
		events, err := s.PXE.Events(ctx, "")
		if err != nil && !errors.Is(err, pxe.ErrServerGone) {
			errs = append(errs, err)
		} else if err := s.SaveEvents(dir, events); err != nil {
			errs = append(errs, err)
		}
	}
	var bridges strings.Builder
	for _, n := range s.env.Nodes {
		for _, br := range []string{s.env.Config.Bridge, s.env.Config.IsolationBridge} {
			if br == "" {
				continue
			}
			st, err := network.InspectBridge(ctx, s.env.Node, n, br)
			if err != nil {
				fmt.Fprintf(&bridges, "node %s bridge %s: %v\n", n, br, err)
				continue
			}
			fmt.Fprintf(&bridges, "node %s bridge %s: %+v\n", n, br, st)
		}
	}
	write("bridges.txt", []byte(bridges.String()))
	return errors.Join(errs...)
}
