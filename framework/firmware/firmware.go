package firmware

import "fmt"

// Firmware names the firmware a guest boots with.
type Firmware string

const (
	// BIOS is SeaBIOS with its output on the serial console.
	BIOS Firmware = "bios"
	// EFI is OVMF without secure boot (the iPXE ROM is unsigned).
	EFI Firmware = "efi"
)

// All lists every firmware, in the order specs and the lab run them.
var All = []Firmware{BIOS, EFI}

// Valid reports an error naming f unless it is BIOS or EFI.
func (f Firmware) Valid() error {
	if f != BIOS && f != EFI {
		return fmt.Errorf("firmware %q: want %s or %s", string(f), BIOS, EFI)
	}
	return nil
}
