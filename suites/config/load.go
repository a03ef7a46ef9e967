package config

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
	"github.com/pxe-conformance/pxe-conformance/framework/settings"
)

// FlagPrefix starts every flag of the suite, keeping them apart from Ginkgo's and go test's.
const FlagPrefix = "pxec."

// EnvPrefix starts every environment variable of the suite.
const EnvPrefix = "PXEC_"

// configKey is the setting that names the configuration file.
const configKey = "config"

// Flags holds the --pxec.* flags a FlagSet has seen, for Load to apply last.
type Flags struct {
	seen []flagValue
}

type flagValue struct {
	key, value string
}

// setting is one key of the configuration as environment variables and flags set it.
type setting struct {
	key    string
	usage  string
	isBool bool
	get    func(c *settings.Config) string
	set    func(c *settings.Config, v string) error
}

// allSettings lists every key of settings.Config with its parser; TestSettingsCoverEveryField
// keeps it in step with settings.Config's JSON fields.
func allSettings() []setting {
	str := func(key, usage string, field func(c *settings.Config) *string) setting {
		return setting{key: key, usage: usage,
			get: func(c *settings.Config) string { return *field(c) },
			set: func(c *settings.Config, v string) error { *field(c) = v; return nil }}
	}
	boolean := func(key, usage string, field func(c *settings.Config) *bool) setting {
		return setting{key: key, usage: usage, isBool: true,
			get: func(c *settings.Config) string { return strconv.FormatBool(*field(c)) },
			set: func(c *settings.Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("not a boolean")
				}
				*field(c) = b
				return nil
			}}
	}
	s := []setting{
		str("mac", "MAC of the PXE client's PXE interface", func(c *settings.Config) *string { return &c.MAC }),
		{key: "allowedMACs", usage: "comma-separated allow-list of the PXE server; empty means mac alone",
			get: func(c *settings.Config) string { return strings.Join(c.AllowedMACs, ",") },
			set: func(c *settings.Config, v string) error {
				c.AllowedMACs = nil
				for _, m := range strings.Split(v, ",") {
					if m = strings.TrimSpace(m); m != "" {
						c.AllowedMACs = append(c.AllowedMACs, m)
					}
				}
				return nil
			}},
		str("bridge", "Linux bridge on the nodes that carries the PXE network", func(c *settings.Config) *string { return &c.Bridge }),
		str("bridge.create", "who makes the bridge: empty, it exists on every node; nncp, the suite, by NodeNetworkConfigurationPolicy (kubernetes-nmstate)", func(c *settings.Config) *string { return &c.BridgeCreate }),
		str("isolationBridge", "second node bridge, unconnected to bridge, for the isolation spec; empty skips it", func(c *settings.Config) *string { return &c.IsolationBridge }),
		{key: "vlan", usage: "VLAN of the PXE network on the bridge, 0 for none",
			get: func(c *settings.Config) string { return strconv.Itoa(c.VLAN) },
			set: func(c *settings.Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("not an integer")
				}
				c.VLAN = n
				return nil
			}},
		str("namespace", "prefix of the namespaces specs create (<prefix>-<random>)", func(c *settings.Config) *string { return &c.Namespace }),
		{key: "firmware", usage: "comma-separated firmware the PXE specs boot with (bios, efi)",
			get: func(c *settings.Config) string {
				s := make([]string, len(c.Firmware))
				for i, f := range c.Firmware {
					s[i] = string(f)
				}
				return strings.Join(s, ",")
			},
			set: func(c *settings.Config, v string) error {
				c.Firmware = nil
				for _, f := range strings.Split(v, ",") {
					if f = strings.TrimSpace(f); f != "" {
						c.Firmware = append(c.Firmware, firmware.Firmware(f))
					}
				}
				return nil
			}},
		str("kubeconfig", "kubeconfig of the cluster; empty means $KUBECONFIG, else the cluster this pod runs in (its service account)", func(c *settings.Config) *string { return &c.Kubeconfig }),
		boolean("keepOnFailure", "keep a failed spec's namespace and objects", func(c *settings.Config) *bool { return &c.KeepOnFailure }),
		boolean("faultInjection", "let the fault specs change nodes (only on a cluster the run owns)", func(c *settings.Config) *bool { return &c.FaultInjection }),
		boolean("skip.isolation", "skip the isolation spec and the isolation bridge's preflight check", func(c *settings.Config) *bool { return &c.Skip.Isolation }),
		boolean("skip.vlan", "skip the VLAN spec and the nodes' VLAN probe", func(c *settings.Config) *bool { return &c.Skip.VLAN }),
		str("artifactsDir", "directory for reports and failed specs' diagnostics (default $ARTIFACTS when set)", func(c *settings.Config) *string { return &c.ArtifactsDir }),
		str("images.pxeServer", "image of the PXE server", func(c *settings.Config) *string { return &c.Images.PXEServer }),
		{key: "emulationScale", usage: "factor for every timeout where KubeVirt emulates the CPU",
			get: func(c *settings.Config) string { return strconv.FormatFloat(c.EmulationScale, 'g', -1, 64) },
			set: func(c *settings.Config, v string) error {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("not a number")
				}
				c.EmulationScale = f
				return nil
			}},
	}
	for i, tf := range (&settings.Timeouts{}).Fields() {
		timeout := func(c *settings.Config) *time.Duration { return c.Timeouts.Fields()[i].Value }
		s = append(s, setting{key: "timeouts." + tf.Key, usage: "timeout: " + tf.Usage,
			get: func(c *settings.Config) string { return timeout(c).String() },
			set: func(c *settings.Config, v string) error {
				d, err := settings.ParseDuration(v)
				if err != nil {
					return err
				}
				*timeout(c) = d
				return nil
			}})
	}
	return s
}

// envName is the environment variable of a setting's key: "timeouts.vmiRunning" is
// PXEC_TIMEOUTS_VMI_RUNNING.
func envName(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	prev := rune(0)
	for _, r := range key {
		switch {
		case r == '.':
			b.WriteByte('_')
		case unicode.IsUpper(r) && prev != 0 && prev != '.' && !unicode.IsUpper(prev):
			b.WriteByte('_')
			b.WriteRune(r)
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
		prev = r
	}
	return b.String()
}

// RegisterFlags defines the --pxec.* flags on fs (flag.CommandLine in a test binary, so that
// `go test ./suites/... -args --pxec.mac=...` and `ginkgo -- --pxec.mac=...` reach them) and
// returns what Load reads once fs is parsed.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	def := settings.Default()
	for _, s := range allSettings() {
		key := s.key
		record := func(v string) error {
			f.seen = append(f.seen, flagValue{key, v})
			return nil
		}
		usage := fmt.Sprintf("%s (env %s; default %q)", s.usage, envName(key), s.get(&def))
		if s.isBool {
			fs.BoolFunc(FlagPrefix+key, usage, record)
		} else {
			fs.Func(FlagPrefix+key, usage, record)
		}
	}
	fs.Func(FlagPrefix+configKey, fmt.Sprintf("YAML or JSON file of settings, below env and flags (env %s)", envName(configKey)),
		func(v string) error {
			f.seen = append(f.seen, flagValue{configKey, v})
			return nil
		})
	return f
}

// Load builds the configuration from Default, $ARTIFACTS, the configuration file, the PXEC_*
// variables lookupEnv finds (os.LookupEnv; empty values count as unset) and the flags f has
// seen, each layer over the one before. It refuses values it cannot parse and unknown keys in
// the file; call Validate on the result.
func (f *Flags) Load(lookupEnv func(string) (string, bool)) (settings.Config, error) {
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		return v, ok && v != ""
	}
	c := settings.Default()
	if v, ok := env("ARTIFACTS"); ok {
		c.ArtifactsDir = v
	}

	path, _ := env(envName(configKey))
	for _, fv := range f.seen {
		if fv.key == configKey {
			path = fv.value
		}
	}
	if path != "" {
		if err := loadFile(path, &c); err != nil {
			return c, err
		}
	}

	for _, s := range allSettings() {
		name := envName(s.key)
		if v, ok := env(name); ok {
			if err := s.set(&c, v); err != nil {
				return c, fmt.Errorf("%s %q: %w", name, v, err)
			}
		}
	}

	byKey := map[string]setting{}
	for _, s := range allSettings() {
		byKey[s.key] = s
	}
	for _, fv := range f.seen {
		if fv.key == configKey {
			continue
		}
		if err := byKey[fv.key].set(&c, fv.value); err != nil {
			return c, fmt.Errorf("flag --%s%s %q: %w", FlagPrefix, fv.key, fv.value, err)
		}
	}
	return c, nil
}

// loadFile decodes the YAML or JSON file at path over c, refusing keys settings.Config does not have
// (a misspelt key must not leave a default silently in place).
func loadFile(path string, c *settings.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return fmt.Errorf("decode config file %s: %w", path, err)
	}
	return nil
}
