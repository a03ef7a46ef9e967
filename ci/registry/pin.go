package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/pxe-conformance/pxe-conformance/framework/imageset"
)

// pin rewrites a set file with every tag resolved to its digest and the operator manifest's
// SHA-256, keeping the file's leading comments. It needs the set's registries to answer.
func pin(ctx context.Context, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return usageError{err}
	}
	set, err := imageset.Parse(data, file)
	if err != nil {
		return usageError{err}
	}
	pinned, err := set.Pin(ctx)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := pinned.Write(&b, imageset.Header(data)); err != nil {
		return err
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("pin: %s pinned:\n", file)
	for _, img := range pinned.Images() {
		fmt.Printf("  %-22s %s\n", img.Field, *img.Ref)
	}
	fmt.Printf("  %-22s sha256 %s\n", "kubevirt manifest", pinned.KubeVirt.OperatorManifest.SHA256)
	return nil
}
