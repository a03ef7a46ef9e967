package prereq

import (
	"testing"
)

// recorder is a testing.TB that records whether the test was skipped or failed.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped, r.msg = true, args[0].(string)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
}

func TestMissingSkipsOutsideCIAndFailsUnderIt(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{}
	Missingf(r, "no %s", "qemu")
	if !r.skipped || r.failed || r.msg != "no qemu" {
		t.Errorf("outside CI: skipped %v failed %v msg %q", r.skipped, r.failed, r.msg)
	}
	t.Setenv("CI", "true")
	r = &recorder{}
	Missing(r, "no qemu")
	if r.skipped || !r.failed {
		t.Errorf("under CI=true: skipped %v failed %v", r.skipped, r.failed)
	}
}
