// Package imageset reads, checks and pins an image set: the images and the KubeVirt operator
// manifest a lab cluster takes from registries instead of building them, each pinned (images by
// digest, the manifest by URL and SHA-256), in one YAML or JSON file.
//
// fixtures/images/upstream.yaml is the upstream set; a mirror for air-gapped users is another
// file of the same shape. Load refuses a set that is not fully pinned, naming the file, the
// field and its value; Read accepts tags, for the tools that pin a set (Pin) or copy one into a
// registry. Check asks every reference's registry for its manifest, without pulling anything,
// within one bound for all of them, so that a run can tell in seconds whether the set is
// reachable from here.
package imageset
