package cluster

import (
	"fmt"
	"io"
	"net/url"
	"regexp"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// DefaultNodeImage is the node image `go run ./ci/imagebuilder node` makes.
const DefaultNodeImage = "pxec.local/kind-node:v1.34.4"

// DefaultReadyTimeout bounds the wait for every node and kube-system pod to become Ready.
const DefaultReadyTimeout = 5 * time.Minute

// CreateOption configures CreateKind.
type CreateOption interface {
	apply(*createOptions) error
}

type createOptionFunc func(*createOptions) error

func (f createOptionFunc) apply(o *createOptions) error { return f(o) }

type createOptions struct {
	nodeImage    string
	kvm          *bool
	workers      int
	config       *v1alpha4.Cluster
	kubeconfig   string
	readyTimeout time.Duration
	log          io.Writer
	// registries maps a registry host, as image names carry it, to the URL the nodes reach it at.
	registries map[string]string
}

func defaultCreateOptions() createOptions {
	return createOptions{nodeImage: DefaultNodeImage, readyTimeout: DefaultReadyTimeout}
}

// WithNodeImage sets the image every node runs (DefaultNodeImage otherwise).
func WithNodeImage(image string) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		if image == "" {
			return fmt.Errorf("node image: %q: must name an image", image)
		}
		o.nodeImage = image
		return nil
	})
}

// WithKVM passes /dev/kvm to the nodes (true) or not (false), overriding framework/kvm's probe.
func WithKVM(kvm bool) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		o.kvm = &kvm
		return nil
	})
}

// WithWorkers adds n worker nodes to the control-plane node (or to the nodes WithConfig names).
func WithWorkers(n int) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		if n < 0 || n > 10 {
			return fmt.Errorf("workers: %d: must be between 0 and 10", n)
		}
		o.workers = n
		return nil
	})
}

// WithConfig starts from a kind v1alpha4 cluster config instead of one control-plane node.
func WithConfig(cfg v1alpha4.Cluster) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		for i, n := range cfg.Nodes {
			if n.Role != v1alpha4.ControlPlaneRole && n.Role != v1alpha4.WorkerRole {
				return fmt.Errorf("config nodes[%d].role: %q: must be %q or %q", i, n.Role, v1alpha4.ControlPlaneRole, v1alpha4.WorkerRole)
			}
		}
		o.config = cfg.DeepCopy()
		return nil
	})
}

// WithKubeconfig writes the cluster's kubeconfig to path (merged into it if it exists) instead
// of a temporary file that Delete removes.
func WithKubeconfig(path string) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		if path == "" {
			return fmt.Errorf("kubeconfig: %q: must be a file path", path)
		}
		o.kubeconfig = path
		return nil
	})
}

// WithReadyTimeout bounds the wait for every node and kube-system pod to be Ready.
func WithReadyTimeout(d time.Duration) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		if d <= 0 {
			return fmt.Errorf("ready timeout: %s: must be positive", d)
		}
		o.readyTimeout = d
		return nil
	})
}

// WithRegistryEndpoint makes the nodes' containerd fetch every image named host/... from
// endpoint instead, the way kind's local-registry guide does it: containerd's registry
// config_path, and a hosts.toml for host on every node. It is for a registry the nodes cannot
// reach under the name the images carry, such as one on the host's loopback
// (127.0.0.1:5000), served to the nodes on their Docker network's gateway.
func WithRegistryEndpoint(host, endpoint string) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		if _, err := name.NewRegistry(host, name.StrictValidation); err != nil || host == "" {
			return fmt.Errorf("registry host: %q: must be a registry host[:port] as image names carry it", host)
		}
		if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("registry endpoint for %s: %q: must be an http or https URL of a host[:port] and nothing else", host, endpoint)
		}
		if o.registries == nil {
			o.registries = map[string]string{}
		}
		o.registries[host] = endpoint
		return nil
	})
}

// WithLog sends kind's progress messages to w (they are dropped otherwise).
func WithLog(w io.Writer) CreateOption {
	return createOptionFunc(func(o *createOptions) error {
		o.log = w
		return nil
	})
}

// validName mirrors what kind accepts as a cluster name: it becomes part of container names,
// a Docker network label and a kubeconfig context.
func validName(name string) error {
	if !regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,48}[a-z0-9])?$`).MatchString(name) {
		return fmt.Errorf("cluster name: %q: must be 1-50 lower-case letters, digits, '.' or '-', starting and ending with a letter or digit", name)
	}
	return nil
}
