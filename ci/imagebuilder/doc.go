// Command imagebuilder builds, from Go modules and Debian packages only (no registry is ever
// contacted), every image the offline lab cluster runs:
//
//	go run ./ci/imagebuilder [--force] [--cache DIR] [target...]
//
// Targets are node (the kind node image with the control-plane images preloaded), kubevirt and
// network, all three when none is named, and sonobuoy (the Sonobuoy plugin's image and
// Sonobuoy's own), built only when named. Each target is cached by its inputs, so a second run
// rebuilds only what changed. The terminal gets one progress line per step; the full output of
// every command goes to a log file under the cache directory, whose path is printed first and
// again when a step fails.
package main
