// Package settings is what a conformance run can be told, owned by the framework: the PXE
// client's MAC and the PXE server's allow-list, the node bridges and VLAN, the namespace prefix,
// the firmware to test, the cluster, artifacts, images, the switches that skip optional parts
// (Skip) and every wait's timeout (Timeouts, one named bound per step, scaled for emulated
// guests).
//
// Default is the documented procedure on the lab cluster. Validate refuses bad values before
// anything is created, each error naming the setting's key and value; what needs the cluster
// (the bridge on every node, say) is framework/preflight's. Loading a file, PXEC_*
// variables and --pxec.* flags into a Config is the suite's business (suites/config).
package settings
