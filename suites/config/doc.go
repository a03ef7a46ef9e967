// Package config loads a conformance run's settings (framework/settings.Config) from where a
// user gives them, and does nothing else.
//
// Load layers, from lowest to highest precedence: settings.Default; $ARTIFACTS for the
// artifacts directory; a YAML or JSON file (--pxec.config or PXEC_CONFIG); PXEC_* environment
// variables; --pxec.* flags registered by RegisterFlags. Every setting has one key, used in all
// three: the file's field path (timeouts.vmiRunning), the flag (--pxec.timeouts.vmiRunning) and
// the variable (PXEC_TIMEOUTS_VMI_RUNNING: camel case split, dots to underscores, upper case).
//
// Load refuses only what it cannot parse; settings.Config.Validate refuses bad values.
package config
