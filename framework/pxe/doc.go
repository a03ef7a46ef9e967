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
// Every event is also a log line (EventMessage), which EventsFromLog reads
// back when the server can no longer be asked: a reader that finds the server
// gone says so with ErrServerGone.
//
// Config.CrashAfter is a test hook, off by default, for specs that check how
// a server dying mid-boot is noticed: CrashAfterDHCPAck closes every socket
// right after the first DHCP ACK has been sent, and Server.Crashed says so.
//
// Scripts, files and TFTP are served only on ServerIP, the PXE interface's
// address: TFTP binds it, and an HTTP connection to any other address the
// listener covers (the pod network, through which the suite reads events)
// gets only the read-only GET /events and GET /healthz, anything else 403
// (Config.ServeAllAddrs widens this). A MAC's script is served only to the
// address reserved for it; a fetch from anywhere else is refused with 403
// and recorded with ReasonNotReservedAddress, so it hands out no nonce and
// never changes what LastScriptNonce returns.
//
// No client can make the server grow without bound: request line and
// headers are limited to 8 KiB, every string an event keeps is cut to 512
// bytes with a visible TruncationMark suffix, the log keeps at most 100,000
// events and 8 MiB of their JSON (dropping the oldest), error replies quote
// at most 64 bytes of input, and log lines are rate-limited (50 a second
// after a burst of 500) with a SuppressedMessage line counting what was
// dropped.
//
// Every Config problem, whether Validate finds it or Start does when it
// applies the value (a Root that does not exist, an unreadable kernel or
// chainload file, an address that cannot be bound), is an error wrapping
// ErrInvalidConfig with one FieldError per problem (see FieldErrors).
package pxe
