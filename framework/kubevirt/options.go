package kubevirt

import (
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of the install options.
const (
	DefaultNamespace        = "kubevirt"
	DefaultName             = "kubevirt"
	DefaultAvailableTimeout = 15 * time.Minute
	DefaultDeleteTimeout    = 5 * time.Minute
)

// Option configures Install.
type Option interface {
	apply(*options) error
}

type optionFunc func(*options) error

func (f optionFunc) apply(o *options) error { return f(o) }

type options struct {
	manifest         []byte
	manifestSource   string // where manifest came from, for errors
	namespace, name  string
	emulation        *bool
	virtTemplate     bool
	images           Images
	availableTimeout time.Duration
	deleteTimeout    time.Duration
	progress         io.Writer
}

func defaultOptions() options {
	return options{
		namespace:        DefaultNamespace,
		name:             DefaultName,
		availableTimeout: DefaultAvailableTimeout,
		deleteTimeout:    DefaultDeleteTimeout,
		progress:         io.Discard,
	}
}

// WithOperatorManifest sets the operator manifest (multi-document YAML: Namespace, CRD, RBAC,
// virt-operator Deployment) that Install applies. Required unless KubeVirt is already installed.
func WithOperatorManifest(yaml []byte) Option {
	return optionFunc(func(o *options) error {
		if len(yaml) == 0 {
			return fmt.Errorf("operator manifest: empty")
		}
		o.manifest, o.manifestSource = yaml, "manifest given in memory"
		return nil
	})
}

// WithOperatorManifestFile reads the operator manifest from path.
func WithOperatorManifestFile(path string) Option {
	return optionFunc(func(o *options) error {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("operator manifest file %q: %w", path, err)
		}
		if len(data) == 0 {
			return fmt.Errorf("operator manifest file %q: empty", path)
		}
		o.manifest, o.manifestSource = data, path
		return nil
	})
}

// WithNamespace sets the namespace of the KubeVirt resource (the manifest's namespace; default
// DefaultNamespace).
func WithNamespace(ns string) Option {
	return optionFunc(func(o *options) error {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, errs[0])
		}
		o.namespace = ns
		return nil
	})
}

// WithName sets the name of the KubeVirt resource (default DefaultName).
func WithName(name string) Option {
	return optionFunc(func(o *options) error {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("name %q: %s", name, errs[0])
		}
		o.name = name
		return nil
	})
}

// WithEmulation forces spec.configuration.developerConfiguration.useEmulation on or off instead
// of asking EmulationNeeded.
func WithEmulation(on bool) Option {
	return optionFunc(func(o *options) error {
		o.emulation = &on
		return nil
	})
}

// WithVirtTemplate keeps KubeVirt's virt-template deployment on (its default in v1.9.0). Only
// for clusters that can pull or already hold the virt-template images; off by default.
func WithVirtTemplate(on bool) Option {
	return optionFunc(func(o *options) error {
		o.virtTemplate = on
		return nil
	})
}

// WithAvailableTimeout bounds the wait for the KubeVirt resource to become Available.
func WithAvailableTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("available timeout %v: must be positive", d)
		}
		o.availableTimeout = d
		return nil
	})
}

// WithDeleteTimeout bounds each wait of Uninstall (KubeVirt resource gone, namespaces gone).
func WithDeleteTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("delete timeout %v: must be positive", d)
		}
		o.deleteTimeout = d
		return nil
	})
}

// WithProgress makes Install and Uninstall report each step and, while waiting, the state of
// the KubeVirt resource and its pods to w.
func WithProgress(w io.Writer) Option {
	return optionFunc(func(o *options) error {
		if w == nil {
			return fmt.Errorf("progress writer: nil")
		}
		o.progress = w
		return nil
	})
}
