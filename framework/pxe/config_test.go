package pxe

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateRejectsBadConfigNamingFieldAndValue(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings the error must contain
	}{
		{"missing interface", func(c *Config) { c.Interface = "" }, []string{"Interface: required"}},
		{"interface name with slash", func(c *Config) { c.Interface = "eth/0" }, []string{`Interface "eth/0"`}},
		{"missing server IP", func(c *Config) { c.ServerIP = netip.Addr{} }, []string{"ServerIP: required"}},
		{"server IP outside subnet", func(c *Config) { c.ServerIP = netip.MustParseAddr("10.0.0.1") }, []string{`ServerIP "10.0.0.1"`, "outside Subnet 127.0.0.0/8"}},
		{"IPv6 server IP", func(c *Config) { c.ServerIP = netip.MustParseAddr("fe80::1") }, []string{`ServerIP "fe80::1"`, "IPv4"}},
		{"missing subnet", func(c *Config) { c.Subnet = netip.Prefix{} }, []string{"Subnet: required"}},
		{"subnet too small", func(c *Config) { c.Subnet = netip.MustParsePrefix("127.0.0.1/31") }, []string{`Subnet "127.0.0.1/31"`}},
		{"router outside subnet", func(c *Config) { c.Router = netip.MustParseAddr("192.168.1.1") }, []string{`Router "192.168.1.1"`, "outside Subnet"}},
		{"IPv6 DNS", func(c *Config) { c.DNS = []netip.Addr{netip.MustParseAddr("::1")} }, []string{`DNS[0] "::1"`}},
		{"negative lease", func(c *Config) { c.LeaseTime = -time.Second }, []string{`LeaseTime "-1s"`}},
		{"unknown crash point", func(c *Config) { c.CrashAfter = "dhcp-offer" }, []string{`CrashAfter "dhcp-offer": not a crash point (want "dhcp-ack"`}},
		{"missing root", func(c *Config) { c.Root = "" }, []string{"Root: required"}},
		{"missing kernel", func(c *Config) { c.Boot.Kernel = "" }, []string{"Boot.Kernel: required"}},
		{"absolute initrd", func(c *Config) { c.Boot.Initrd = "/boot/initrd.img" }, []string{`Boot.Initrd "/boot/initrd.img"`, "absolute"}},
		{"kernel with traversal", func(c *Config) { c.Boot.Kernel = "../vmlinuz" }, []string{`Boot.Kernel "../vmlinuz"`, "parent"}},
		{"cmdline with setting expansion", func(c *Config) { c.Boot.Cmdline = "quiet x=${net0/mac}" }, []string{"Boot.Cmdline", `"x=${net0/mac}"`}},
		{"cmdline with line break", func(c *Config) { c.Boot.Cmdline = "quiet\nshell" }, []string{"Boot.Cmdline", "line break"}},
		{"bad HTTP address", func(c *Config) { c.HTTPAddr = "localhost" }, []string{`HTTPAddr "localhost"`}},
		{"IPv6 TFTP address", func(c *Config) { c.TFTPAddr = "[::1]:69" }, []string{`TFTPAddr "[::1]:69"`, "IPv4"}},
		{"bad DHCP port", func(c *Config) { c.DHCPAddr = "0.0.0.0:bootps" }, []string{`DHCPAddr "0.0.0.0:bootps"`}},
		{"short MAC", func(c *Config) { c.Reservations[0].MAC = net.HardwareAddr{1, 2, 3} }, []string{`Reservations[0].MAC "01:02:03"`, "6-byte"}},
		{"multicast MAC", func(c *Config) { c.Reservations[0].MAC = mustMAC("01:00:5e:00:00:01") }, []string{`Reservations[0].MAC "01:00:5e:00:00:01"`, "multicast"}},
		{"zero MAC", func(c *Config) { c.Reservations[0].MAC = make(net.HardwareAddr, 6) }, []string{`Reservations[0].MAC "00:00:00:00:00:00"`}},
		{"duplicate MAC", func(c *Config) { c.Reservations[1].MAC = testMAC }, []string{`Reservations[1].MAC "de:00:00:00:00:de"`, "duplicates Reservations[0]"}},
		{"duplicate IP", func(c *Config) { c.Reservations[1].IP = c.Reservations[0].IP }, []string{`Reservations[1].IP "127.0.0.2"`, "duplicates Reservations[0]"}},
		{"IP outside subnet", func(c *Config) { c.Reservations[1].IP = netip.MustParseAddr("10.1.2.3") }, []string{`Reservations[1].IP "10.1.2.3"`, "outside Subnet"}},
		{"IP is server IP", func(c *Config) { c.Reservations[0].IP = c.ServerIP }, []string{`Reservations[0].IP "127.0.0.1"`, "ServerIP"}},
		{"IP is broadcast", func(c *Config) { c.Reservations[0].IP = netip.MustParseAddr("127.255.255.255") }, []string{`Reservations[0].IP "127.255.255.255"`, "broadcast"}},
		{"missing IP", func(c *Config) { c.Reservations[0].IP = netip.Addr{} }, []string{"Reservations[0].IP: required"}},
		{"bad hostname", func(c *Config) { c.Reservations[0].Hostname = "bad_name" }, []string{`Reservations[0].Hostname "bad_name"`}},
		{"kernel arg with space", func(c *Config) { c.Reservations[0].KernelArgs = []string{"a b"} }, []string{`Reservations[0].KernelArgs[0] "a b"`, "whitespace"}},
		{"kernel arg with quote", func(c *Config) { c.Reservations[0].KernelArgs = []string{`x="y"`} }, []string{`Reservations[0].KernelArgs[0]`, "quote"}},
		{"kernel arg overriding nonce", func(c *Config) { c.Reservations[0].KernelArgs = []string{"pxec.nonce=1"} }, []string{`Reservations[0].KernelArgs[0] "pxec.nonce=1"`, "server itself"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loopbackConfig(t)
			tt.mutate(&cfg)
			_, err := validate(cfg)
			if err == nil {
				t.Fatal("validate accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.Interface = ""
	cfg.Reservations[1].MAC = testMAC
	_, err := validate(cfg)
	if err == nil {
		t.Fatal("validate accepted the config")
	}
	for _, w := range []string{"Interface: required", "Reservations[1].MAC"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestValidateAppliesDefaults(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.HTTPAddr, cfg.TFTPAddr, cfg.DHCPAddr = "", "", ""
	cfg.Subnet = netip.MustParsePrefix("127.1.2.3/8")
	st, err := validate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"HTTPAddr", st.HTTPAddr, DefaultHTTPAddr},
		{"TFTPAddr", st.TFTPAddr, DefaultTFTPAddr},
		{"DHCPAddr", st.DHCPAddr, DefaultDHCPAddr},
		{"LeaseTime", st.LeaseTime.String(), DefaultLeaseTime.String()},
		{"Subnet", st.Subnet.String(), "127.0.0.0/8"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if st.Logger == nil {
		t.Error("Logger left nil")
	}
}

func TestStartRejectsRootProblems(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// replace swaps a chainload file for something that cannot be served.
	replace := func(name string, with func(path string) error) func(*Config) {
		return func(c *Config) {
			p := filepath.Join(c.Root, name)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := with(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"missing root", func(c *Config) { c.Root = "/nonexistent/pxec-root" }, []string{`Root "/nonexistent/pxec-root"`}},
		{"root is a file", func(c *Config) { c.Root = file }, []string{`Root "` + file + `"`, "not a directory"}},
		{"kernel absent", func(c *Config) { c.Boot.Kernel = "vmlinuz-missing" }, []string{`Boot.Kernel "vmlinuz-missing"`}},
		{"initrd is a directory", func(c *Config) { c.Boot.Initrd = "sub" }, []string{`Boot.Initrd "sub"`, "not a regular file"}},
		{"interface absent", func(c *Config) { c.Interface = "pxecnone0" }, []string{`Interface "pxecnone0"`}},
		// Issue 13, defect 5: these were accepted without a word.
		{"BIOS loader is a directory", replace(BIOSLoader, func(p string) error { return os.Mkdir(p, 0o755) }),
			[]string{`Root "`, "chainload file " + BIOSLoader, "not a regular file"}},
		{"EFI loader leads outside the root", replace(EFILoader, func(p string) error { return os.Symlink(file, p) }),
			[]string{`Root "`, "chainload file " + EFILoader, "outside the root"}},
		{"EFI loader is a dangling link", replace(EFILoader, func(p string) error { return os.Symlink("nowhere.efi", p) }),
			[]string{`Root "`, "chainload file " + EFILoader}},
		{"server IP not on interface", func(c *Config) {
			c.ServerIP = netip.MustParseAddr("127.0.0.9")
			c.HTTPAddr, c.TFTPAddr = "127.0.0.9:0", "127.0.0.9:0"
		}, []string{`ServerIP "127.0.0.9"`, "not configured on interface lo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loopbackConfig(t)
			tt.mutate(&cfg)
			srv, err := Start(t.Context(), cfg)
			if err == nil {
				srv.Stop(t.Context())
				t.Fatal("Start accepted the config")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q is not ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestStartAcceptsMissingChainloadFiles(t *testing.T) {
	// Firmware with iPXE of its own never asks for them.
	startLoopback(t, func(c *Config) {
		for _, name := range []string{BIOSLoader, EFILoader} {
			if err := os.Remove(filepath.Join(c.Root, name)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestStartReportsEveryPayloadProblem(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.Boot.Kernel, cfg.Boot.Initrd = "no-kernel", "no-initrd"
	if err := os.Remove(filepath.Join(cfg.Root, BIOSLoader)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(cfg.Root, BIOSLoader), 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := Start(t.Context(), cfg)
	if err == nil {
		srv.Stop(t.Context())
		t.Fatal("Start accepted the config")
	}
	var fields []string
	for _, fe := range FieldErrors(err) {
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, " "); got != "Boot.Kernel Boot.Initrd Root" {
		t.Errorf("fields %q, want Boot.Kernel Boot.Initrd Root; error %q", got, err)
	}
}

func TestValidateRefusesListenersOffServerIP(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.HTTPAddr, cfg.TFTPAddr = "127.0.0.5:0", "127.0.0.5:0"
	_, err := validate(cfg)
	for _, w := range []string{`HTTPAddr "127.0.0.5:0": is neither ServerIP 127.0.0.1`, `TFTPAddr "127.0.0.5:0": is neither ServerIP 127.0.0.1`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	cfg.ServeAllAddrs = true
	if _, err := validate(cfg); err != nil {
		t.Errorf("with ServeAllAddrs: %v", err)
	}
}
