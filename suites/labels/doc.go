// Package labels holds every Ginkgo label the suite's specs carry, in one file, so that
// `--label-filter` expressions in the Makefile, CI and the README name labels that exist.
//
// The labels are string constants, composed at the spec: It("...", Label(labels.PXE,
// labels.BIOS), ...). Constants, not package-level Labels values, because a Labels value is a
// slice any spec could append to.
package labels
