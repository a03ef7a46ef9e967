package labels

// The suite's labels, each saying which specs carry it.
const (
	// PXE marks every spec that boots a VMI through the PXE server.
	PXE = "pxe"
	// BIOS marks specs that boot with SeaBIOS.
	BIOS = "bios"
	// EFI marks specs that boot with OVMF (EFI stopped PXE booting once upstream, so it has
	// its own specs).
	EFI = "efi"
	// Negative marks specs that prove something does not happen: an unknown MAC gets no DHCP
	// answer, a NIC without boot order is never tried.
	Negative = "negative"
	// VLAN marks specs that need 802.1Q on the nodes; they skip, with the kernel's reason,
	// where VLANs are unsupported.
	VLAN = "vlan"
	// Isolation marks specs that show two PXE networks cannot reach each other.
	Isolation = "isolation"
	// Slow marks specs that boot more than once or wait long, for runs that want to skip them.
	Slow = "slow"
	// Fault marks specs that inject a fault (on the nodes, the PXE server or the guest) and check
	// that the suite names it, or that the boot survives it (a guest reboot); those that change
	// the nodes need faultInjection. They are not part of a certification run.
	Fault = "fault"
	// Certification marks the specs a vendor runs against an existing cluster
	// (`make certify`): they create nothing outside their own namespaces.
	Certification = "certification"
)

// All returns every label above, for documentation and checks.
func All() []string {
	return []string{PXE, BIOS, EFI, Negative, VLAN, Isolation, Slow, Fault, Certification}
}
