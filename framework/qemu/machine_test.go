package qemu

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/pxe-conformance/pxe-conformance/framework/firmware"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestArgsShapeTheGuestLikeAKubeVirtVMI(t *testing.T) {
	cfg := Config{
		Name:      "pxe-client",
		Accel:     TCG,
		Pod:       PodNIC{SSHPort: 2222},
		Bridge:    []BridgeNIC{{Tap: "pxectap0", MAC: mustMAC(t, "de:00:00:00:00:de"), BootIndex: 1}, {Tap: "pxectap1", MAC: mustMAC(t, "de:00:00:00:00:df")}},
		Wrap:      []string{"ip", "netns", "exec", "pxec-lab"},
		Firmware:  firmware.BIOS,
		VNCSocket: "/run/vnc.sock",
	}
	args, err := cfg.Args(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"ip netns exec pxec-lab qemu-system-x86_64 ",
		"-accel tcg",
		"-netdev user,id=pod,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22",
		"-device virtio-net-pci,netdev=pod,romfile=,addr=0x3",
		"-netdev tap,id=br0,ifname=pxectap0,script=no,downscript=no",
		"-device virtio-net-pci,netdev=br0,mac=de:00:00:00:00:de,addr=0x4,bootindex=1",
		// A NIC without a boot index gets no ROM, so it is never tried.
		"-device virtio-net-pci,netdev=br1,mac=de:00:00:00:00:df,addr=0x5,romfile=",
		"-serial stdio",
		"-device VGA -vnc unix:/run/vnc.sock",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "pflash") || strings.Contains(line, "-kernel") {
		t.Errorf("BIOS network boot has firmware or kernel flags it should not:\n%s", line)
	}
}

func TestArgsForEFICopyTheVariableStore(t *testing.T) {
	dir := t.TempDir()
	vars := dir + "/vars.fd"
	if err := os.WriteFile(vars, []byte("VARS"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Name: "efi", Accel: KVM, Firmware: firmware.EFI, OVMFCode: "/code.fd", OVMFVars: vars}
	args, err := cfg.Args(dir)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	if !strings.Contains(line, "file=/code.fd") || !strings.Contains(line, "file="+dir+"/OVMF_VARS.fd") || !strings.Contains(line, "-cpu host") {
		t.Errorf("EFI command line wrong:\n%s", line)
	}
}

func TestArgsRejectBadConfigNamingTheField(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Accel: TCG}, "Name is empty"},
		{"bad accel", Config{Name: "x", Accel: "hvf"}, `Accel "hvf"`},
		{"bad firmware", Config{Name: "x", Accel: TCG, Firmware: "coreboot"}, `Firmware "coreboot"`},
		{"no tap", Config{Name: "x", Accel: TCG, Bridge: []BridgeNIC{{MAC: net.HardwareAddr{1, 2, 3, 4, 5, 6}}}}, "Bridge[0].Tap is empty"},
		{"short mac", Config{Name: "x", Accel: TCG, Bridge: []BridgeNIC{{Tap: "t", MAC: net.HardwareAddr{1, 2}}}}, "Bridge[0].MAC"},
		{"bad port", Config{Name: "x", Accel: TCG, Pod: PodNIC{SSHPort: 70000}}, "Pod.SSHPort 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.Args(t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Args error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDetectAccelHonoursTheOverride(t *testing.T) {
	t.Setenv(AccelEnv, "tcg")
	a, why, err := DetectAccel(context.Background(), "")
	if err != nil || a != TCG || !strings.Contains(why, AccelEnv) {
		t.Errorf("DetectAccel = %q, %q, %v", a, why, err)
	}
	t.Setenv(AccelEnv, "hvf")
	if _, _, err := DetectAccel(context.Background(), ""); err == nil || !strings.Contains(err.Error(), `"hvf"`) {
		t.Errorf("DetectAccel accepted a bad override: %v", err)
	}
}
