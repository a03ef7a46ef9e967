package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
)

type verifyConfig struct {
	kubeconfig, set, accessLog string
}

// verify checks that the cluster got its images from the set's registry by pulling them:
// each image a pod runs from the registry has a kubelet "Successfully pulled" event and was
// served to a node (a client other than loopback) by the registry; the node image was served
// to this host. Every image of the set but virt-exportserver (started only for an export) must
// be running, unless the cluster runs another build of it, which is reported.
func verify(ctx context.Context, c verifyConfig) error {
	if err := required([2]string{"kubeconfig", c.kubeconfig}, [2]string{"set", c.set}, [2]string{"access-log", c.accessLog}); err != nil {
		return err
	}
	set, err := imageset.Load(c.set)
	if err != nil {
		return usageError{err}
	}
	text, err := os.ReadFile(c.accessLog)
	if err != nil {
		return err
	}
	log, err := parseAccess(string(text))
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", c.kubeconfig, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	events, err := kube.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: "reason=Pulled"})
	if err != nil {
		return fmt.Errorf("list Pulled events: %w", err)
	}
	running := podImages(pods.Items)
	pulled := pulledImages(events.Items)

	var problems []string
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIELD\tIMAGE\tKUBELET\tREGISTRY SERVED ITS MANIFEST TO")
	node, err := name.NewDigest(set.KindNode)
	if err != nil {
		return err
	}
	hostClients := manifestClients(log, node)
	how := "(the node image: docker pull on this host)"
	if !slices.Contains(hostClients, "127.0.0.1") && dockerResolved(log, node) {
		// Docker keeps the manifests it pulled in its content store and, asked for one by a
		// digest it holds (an earlier run pulled the same build), only checks it with a HEAD.
		hostClients = append(hostClients, "127.0.0.1")
		how = "(the node image: docker pull on this host; Docker resolved the digest with a HEAD, its manifest cached from an earlier pull)"
	}
	fmt.Fprintf(tw, "kindNode\t%s\t%s\t%s\n", set.KindNode, how, strings.Join(hostClients, ","))
	if !slices.Contains(hostClients, "127.0.0.1") {
		problems = append(problems, fmt.Sprintf("kindNode %s: the registry never served its manifest to this host's Docker, nor did Docker resolve it there", set.KindNode))
	}
	for _, img := range set.Images()[1:] {
		ref := *img.Ref
		if img.Field == "kubevirt.exportServer" {
			continue
		}
		if !running[ref] {
			other := runningLike(running, ref)
			if other == "" {
				problems = append(problems, fmt.Sprintf("%s %s: no pod runs it", img.Field, ref))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t(not deployed: the cluster runs %s, loaded from this machine)\t\n", img.Field, ref, other)
			continue
		}
		d, err := name.NewDigest(ref)
		if err != nil {
			return err
		}
		clients := manifestClients(log, d)
		var nodes []string
		for _, cl := range clients {
			if cl != "127.0.0.1" {
				nodes = append(nodes, cl)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Field, ref, orNone(pulled[ref]), strings.Join(clients, ","))
		if pulled[ref] == "" {
			problems = append(problems, fmt.Sprintf("%s %s: runs, but no kubelet event says it was pulled", img.Field, ref))
		}
		if len(nodes) == 0 {
			problems = append(problems, fmt.Sprintf("%s %s: runs, but the registry never served its manifest to a node", img.Field, ref))
		}
	}
	tw.Flush()
	var others []string
	for ref := range running {
		if !strings.HasPrefix(ref, node.RegistryStr()+"/") {
			others = append(others, ref)
		}
	}
	sort.Strings(others)
	fmt.Printf("images the pods run from elsewhere (built here and loaded, or inside the node image): %s\n", strings.Join(others, " "))
	if len(problems) > 0 {
		return fmt.Errorf("%d image(s) not shown to be pulled from %s:\n  %s", len(problems), node.RegistryStr(), strings.Join(problems, "\n  "))
	}
	fmt.Printf("verify: every image the cluster runs from %s was pulled from it\n", node.RegistryStr())
	return nil
}

// podImages is the set of images the pods' containers and init containers run.
func podImages(pods []corev1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, p := range pods {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			out[c.Image] = true
		}
	}
	return out
}

// pulledImages maps each image a kubelet reports as pulled to its event's message.
func pulledImages(events []corev1.Event) map[string]string {
	out := map[string]string{}
	for _, e := range events {
		const prefix = `Successfully pulled image "`
		if !strings.HasPrefix(e.Message, prefix) {
			continue
		}
		ref, rest, ok := strings.Cut(strings.TrimPrefix(e.Message, prefix), `"`)
		if ok {
			out[ref] = strings.TrimSpace(rest)
		}
	}
	return out
}

// manifestClients lists the clients the registry served ref's manifest to (by digest or tag),
// with status 200.
func manifestClients(log []access, ref name.Digest) []string {
	path := "/v2/" + ref.RepositoryStr() + "/manifests/"
	seen := map[string]bool{}
	var out []string
	for _, a := range log {
		if a.method == "GET" && a.status == 200 && strings.HasPrefix(a.path, path) && !seen[a.client] {
			seen[a.client] = true
			out = append(out, a.client)
		}
	}
	return out
}

// dockerResolved says whether this host's Docker (its User-Agent, from loopback) asked the
// registry for ref's manifest by digest and was answered 200.
func dockerResolved(log []access, ref name.Digest) bool {
	path := "/v2/" + ref.RepositoryStr() + "/manifests/" + ref.DigestStr()
	for _, a := range log {
		if a.client == "127.0.0.1" && a.path == path && a.status == 200 && (a.method == "HEAD" || a.method == "GET") && strings.HasPrefix(a.agent, "docker/") {
			return true
		}
	}
	return false
}

// runningLike returns an image the pods run from another repository of the same name
// (virt-handler from our build instead of the set's), or "".
func runningLike(running map[string]bool, ref string) string {
	d, err := name.NewDigest(ref)
	if err != nil {
		return ""
	}
	parts := strings.Split(d.RepositoryStr(), "/")
	base := "/" + parts[len(parts)-1] + ":"
	for r := range running {
		if strings.Contains(r, base) {
			return r
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "NO PULL EVENT"
	}
	return "pulled " + s
}
