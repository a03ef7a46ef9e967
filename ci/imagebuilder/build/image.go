package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pxe-conformance/pxe-conformance/framework/command"
)

// InputLabel is the image label that records the hash of everything an image was built from.
const InputLabel = "io.pxe-conformance.inputs"

// Hash returns a short stable hash of the given parts (versions, file contents, flags).
func Hash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// HashDir hashes the names, modes and contents of every regular file and link under dir.
func HashDir(dir string) (string, error) {
	h := sha256.New()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", dir, err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %o\n", rel, st.Mode())
		if st.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "-> %s\n", target)
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ImageInputs returns the input hash recorded on a local image, or "" when the image is absent.
func ImageInputs(ctx context.Context, image string) string {
	out, err := Output(ctx, exec.CommandContext(ctx, "docker", "image", "inspect", "--format",
		fmt.Sprintf("{{index .Config.Labels %q}}", InputLabel), image))
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	if v == "<no value>" {
		return ""
	}
	return v
}

// UpToDate reports whether image exists and was built from inputs.
func UpToDate(ctx context.Context, image, inputs string) bool {
	return ImageInputs(ctx, image) == inputs
}

// ImportDir turns a root filesystem directory into a local image with the given Dockerfile
// instructions (ENTRYPOINT, ENV, ...) applied, labelled with the input hash. docker import
// cannot set every instruction (STOPSIGNAL), so the import is followed by a one-line build.
//
// The intermediate image (<image>-rootfs) is removed also when the build fails or is
// interrupted, and one an earlier interrupted build left is removed first: an import that
// Ctrl-C ended can still complete in the engine after the CLI exits.
func ImportDir(ctx context.Context, log io.Writer, dir, image, inputs string, instructions []string) (err error) {
	base := image + "-rootfs"
	removeBase := func() error {
		out, err := exec.Command("docker", "image", "rm", "--force", base).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "No such image") {
			return &command.Error{Command: "docker image rm --force " + base, Err: err, Output: string(out)}
		}
		return nil
	}
	if err := removeBase(); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, removeBase()) }()
	tar := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", dir, "-cf", "-", ".")
	imp := exec.CommandContext(ctx, "docker", "import", "-", base)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	tarErr := make(chan error, 1)
	if err := tar.Start(); err != nil {
		return &command.Error{Command: command.LineOf(tar), Err: err}
	}
	go func() { tarErr <- tar.Wait() }()
	if err := Run(ctx, log, imp); err != nil {
		return err
	}
	if err := <-tarErr; err != nil {
		return &command.Error{Command: command.LineOf(tar) + " | " + command.LineOf(imp), Err: err}
	}
	dockerfile := "FROM " + base + "\n" + strings.Join(instructions, "\n") + "\n"
	return BuildDockerfile(ctx, log, dockerfile, "", image, inputs)
}

// BuildDockerfile builds image from the given Dockerfile text with contextDir as its context
// (an empty context when contextDir is ""), labelled with the input hash. The base images must
// already be local: nothing is pulled.
func BuildDockerfile(ctx context.Context, log io.Writer, dockerfile, contextDir, image, inputs string) error {
	if contextDir == "" {
		tmp, err := os.MkdirTemp("", "pxec-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		contextDir = tmp
	}
	df, err := os.CreateTemp("", "pxec-Dockerfile-")
	if err != nil {
		return err
	}
	defer os.Remove(df.Name())
	if _, err := df.WriteString(dockerfile); err != nil {
		df.Close()
		return err
	}
	df.Close()
	cmd := exec.CommandContext(ctx, "docker", "build", "--pull=false", "-f", df.Name(),
		"--label", InputLabel+"="+inputs, "-t", image, contextDir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	return Run(ctx, log, cmd)
}
