// Package pxe is the PXE server the conformance suite boots virtual machines
// from: DHCPv4 with a fixed allow-list of reservations, TFTP and HTTP over one
// read-only root directory, a per-MAC iPXE script, optional IPv6 router
// advertisements, and a per-MAC event log that specs assert on.
//
// Start opens every socket it needs (inside Config.Netns when set) and returns
// a Server whose Stop closes exactly those sockets and waits for the
// goroutines Start began. Only MACs listed in Config.Reservations get DHCP
// answers, each its fixed address; any other MAC is ignored and recorded as a
// "dhcp-ignored" event, so a spec can prove that a VM it did not configure
// never received an address.
//
// Boot flow: firmware without iPXE (DHCP client architecture 0 for BIOS, 7 or
// 9 for x86-64 EFI) is told to fetch undionly.kpxe or ipxe.efi over TFTP from
// ServerIP. iPXE (user class "iPXE") is given the HTTP URL of its script,
// http://<ServerIP>:<http port>/ipxe/<mac> with the MAC in lowercase,
// colon-separated form (de:00:00:00:00:de). The script loads Boot.Kernel and
// Boot.Initrd over HTTP with the global command line, the reservation's extra
// arguments, pxec.mac=<mac> and pxec.nonce=<fresh hex>; the nonce changes
// every time the script is served, so a spec can tell which boot a guest's
// ready line belongs to.
//
// Every DHCP exchange, script, file transfer and router solicitation is
// recorded as an Event (Server.Events, Server.WaitFor, and GET /events over
// HTTP). File transfers are recorded when they end, with bytes and duration.
package pxe
