package pxe

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"path"
	"strings"
)

// scriptPathPrefix is where per-MAC iPXE scripts live on the HTTP server.
const scriptPathPrefix = "/ipxe/"

// newNonce returns 16 random bytes in hex, fresh for every script served.
func newNonce() string {
	var b [16]byte
	// crypto/rand.Read never fails on Linux (it panics rather than return an error).
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// fileURL is the HTTP URL of a file under the root, each path element escaped.
func fileURL(base, name string) string {
	elems := strings.Split(name, "/")
	for i, e := range elems {
		elems[i] = url.PathEscape(e)
	}
	return base + "/" + strings.Join(elems, "/")
}

// renderScript writes the iPXE script for one reservation. base is the
// server's HTTP base URL (http://<ServerIP>:<port>). The initrd= argument
// names the image by its base name, which is what iPXE calls it; Debian's
// 2019 iPXE under EFI needs it to hand the initrd to the kernel.
func renderScript(base string, boot Boot, res Reservation, nonce string) string {
	args := []string{"initrd=" + path.Base(boot.Initrd)}
	args = append(args, strings.Fields(boot.Cmdline)...)
	args = append(args, res.KernelArgs...)
	args = append(args, "pxec.mac="+macKey(res.MAC), "pxec.nonce="+nonce)

	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString("kernel " + fileURL(base, boot.Kernel) + " " + strings.Join(args, " ") + "\n")
	b.WriteString("initrd " + fileURL(base, boot.Initrd) + "\n")
	b.WriteString("boot\n")
	return b.String()
}
