// Package bootimage builds the guest payload that the PXE server hands out:
// Debian bookworm's kernel, an initramfs, and Debian's iPXE binaries for
// firmware whose PXE stack is not iPXE.
//
// Build fetches Debian packages with `apt-get download` into the cache (they
// are never installed on the host), unpacks them there, and writes the
// initramfs itself: busybox-static with the applet links fixtures/guest
// lists, dropbear with the shared libraries its ELF headers need, the virtio
// modules in dependency order, and fixtures/guest's /init. The archive is a
// cpio "newc" stream with sorted entries, uid and gid 0, one fixed mtime,
// compressed by gzip with no name and no time, so the same inputs give the
// same bytes. Payloads are cached under a hash of the package versions, the
// module list and the guest files; concurrent Builds, from one process or
// several, serialise on a lock file in the cache and publish with a rename.
// On a machine without apt (the suite in a container image), Build takes a
// payload already in the cache that was built from the same guest files and
// modules; Payload.Seed puts one there.
//
// Fetch is the same pinned and hashed download for other callers: the image
// builder takes the PXE server image's busybox-static and iPXE from it, so
// the image and the payload carry the builds apt's candidates name, each
// checked against the archive index's SHA-256.
//
// ParseReady reads the line the guest prints once sshd listens; its format
// is the suite's contract between guest, PXE server and specs. The guest's
// SSH host key is HostKeyAlgorithm's (ECDSA P-256): bookworm's dropbear
// breaks Go clients that meet it with only an ed25519 key.
package bootimage
