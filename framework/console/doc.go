// Package console drives a VM's serial console the way a person would, and
// keeps a record of everything it saw.
//
// A Console reads any io.ReadWriter (QEMU's serial on stdio, KubeVirt's
// serial-console websocket) in the background and keeps two views: the raw
// transcript, byte for byte as received, and a cleaned text with terminal
// escape sequences, carriage returns and NULs removed. Firmware interleaves
// cursor and colour escapes with its text (SeaBIOS, iPXE, OVMF), so patterns
// are matched against the cleaned text only.
//
// Expectations consume the cleaned text: each match moves the console's
// cursor past it, so later expectations never match stale output. Every
// failed expectation reports what it waited for and the last lines the
// console showed. Commands run in the guest shell are anchored on unique
// markers the guest prints, never on a prompt that may be left over in the
// buffer.
//
// The console owns its stream: Close and Attach close it if it is an
// io.Closer. After a stream ends (a websocket that dropped), Attach gives
// the same Console a new stream and the transcript continues; WithHistory
// lets a new Console continue an earlier transcript instead.
package console
