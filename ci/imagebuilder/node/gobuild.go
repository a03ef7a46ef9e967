package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/pxe-conformance/pxe-conformance/ci/imagebuilder/build"
)

// buildRepoCommand builds a command of this repository (fixtures/...) statically into dir.
func (b *builder) buildRepoCommand(ctx context.Context, pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	return out, build.BuildLocal(ctx, b.o, b.repo, pkg, out)
}

// fileHash is the SHA-256 of a file's content, for image input hashes.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
