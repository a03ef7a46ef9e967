// Package config is the conformance suite's configuration, in one place: the PXE client's MAC,
// the node bridge and VLAN, the namespace prefix, the firmware to test, the cluster, artifacts,
// images and every wait's timeout.
//
// Load layers, from lowest to highest precedence: Default; $ARTIFACTS for the artifacts
// directory; a YAML or JSON file (--pxec.config or PXEC_CONFIG); PXEC_* environment variables;
// --pxec.* flags registered by RegisterFlags. Every setting has one key, used in all three:
// the file's field path (timeouts.vmiRunning), the flag (--pxec.timeouts.vmiRunning) and the
// variable (PXEC_TIMEOUTS_VMI_RUNNING: camel case split, dots to underscores, upper case).
//
// Load refuses only what it cannot parse. Validate refuses bad values, each error naming the
// setting's key and value, and must pass before the suite creates anything; CheckBridge is the
// part of validation that needs the cluster's nodes and runs in the suite's preflight.
package config
