// Package build holds the steps the offline image builder is made of: running commands with
// errors that can be pasted into a shell, caching images by a hash of their inputs (kept as a
// label on the image itself), importing root filesystems into the Docker engine, and progress
// lines for every long step.
//
// Nothing here pulls from a registry: every image starts from a directory made on this machine.
package build
