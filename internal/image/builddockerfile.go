package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DockerBuildOptions tune BuildDockerfile.
type DockerBuildOptions struct {
	// Ref is recorded in the archive's index.json, so Import can be called
	// with ref "". Optional.
	Ref string
	// BuildArgs are passed as --build-arg KEY=VALUE.
	BuildArgs map[string]string
	// Target is the stage to build (--target), "" for the last.
	Target string
	// Labels are added to the image (--label).
	Labels map[string]string
	// NoCache disables the builder's layer cache.
	NoCache bool
	// Builder forces "buildah", "podman" or "docker"; "" picks the first
	// available in that order (see DetectBuilder).
	Builder string
	// OutputPath is where the OCI archive is written; "" creates a temp file
	// that the caller must remove.
	OutputPath string
	// Output receives the builder's progress output; when nil the output is
	// returned in the error of a failed build.
	Output io.Writer
	// Log receives which builder was used; nil discards.
	Log *slog.Logger
}

// Builders BuildDockerfile can drive, in order of preference.
var builders = []string{"buildah", "podman", "docker"}

// DetectBuilder returns the Dockerfile builder BuildDockerfile would use:
// buildah (daemonless, `--isolation chroot`), else podman, else docker when
// its daemon answers. The error says what to install when there is none.
func DetectBuilder(ctx context.Context) (string, error) {
	for _, b := range builders {
		if builderUsable(ctx, b) {
			return b, nil
		}
	}
	return "", errors.New("no Dockerfile builder found: install buildah (apt-get install buildah), podman, or docker with a running daemon; or use the builtin go builder")
}

func builderUsable(ctx context.Context, b string) bool {
	p, err := exec.LookPath(b)
	if err != nil {
		return false
	}
	if b == "docker" {
		// The CLI alone is not enough: the daemon must answer.
		return exec.CommandContext(ctx, p, "info", "--format", "{{.ID}}").Run() == nil
	}
	return true
}

// BuildDockerfile builds the Dockerfile (relative to contextDir unless
// absolute; "" = "Dockerfile") with buildah, podman or docker, whichever is
// installed (buildah preferred), and writes the image as an OCI archive that
// Import accepts. It returns the archive's path. The builder used is logged
// and named in errors.
func BuildDockerfile(ctx context.Context, contextDir, dockerfile string, opts DockerBuildOptions) (archivePath string, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctxDir, err := filepath.Abs(contextDir)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", contextDir, err)
	}
	if fi, err := os.Stat(ctxDir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("build: context directory %s not found", contextDir)
	}
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(ctxDir, dockerfile)
	}
	if _, err := os.Stat(dockerfile); err != nil {
		return "", fmt.Errorf("build %s: Dockerfile %s not found", contextDir, dockerfile)
	}
	ref := ""
	if opts.Ref != "" {
		if ref, err = normalizeLocalRef(opts.Ref); err != nil {
			return "", fmt.Errorf("build %s: %w", contextDir, err)
		}
	}

	builder := opts.Builder
	if builder == "" {
		if builder, err = DetectBuilder(ctx); err != nil {
			return "", fmt.Errorf("build %s: %w", contextDir, err)
		}
	} else if !builderUsable(ctx, builder) {
		return "", fmt.Errorf("build %s: builder %q is not installed or not running", contextDir, builder)
	}
	log.Info("building Dockerfile", "builder", builder, "context", ctxDir, "dockerfile", dockerfile)

	out := opts.OutputPath
	if out == "" {
		f, err := os.CreateTemp("", "hangar-build-*.tar")
		if err != nil {
			return "", fmt.Errorf("build %s: %w", contextDir, err)
		}
		f.Close()
		out = f.Name()
		defer func() {
			if err != nil {
				os.Remove(out)
			}
		}()
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", err
	}
	if strings.Contains(out, ":") {
		return "", fmt.Errorf("build %s: output path %s must not contain ':'", contextDir, out)
	}

	var rnd [6]byte
	rand.Read(rnd[:])
	tmpTag := "localhost/hangar-build-" + hex.EncodeToString(rnd[:]) + ":latest"

	var logBuf bytes.Buffer
	var w io.Writer = &logBuf
	if opts.Output != nil {
		w = opts.Output
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, builder, args...)
		cmd.Dir = ctxDir
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w\n%s", builder, args[0], err, tail(logBuf.String(), 4000))
		}
		return nil
	}

	args := []string{"build", "-f", dockerfile, "-t", tmpTag}
	if builder == "buildah" {
		args = []string{"bud", "--isolation", "chroot", "-f", dockerfile, "-t", tmpTag}
	} else if builder == "podman" {
		args = append(args, "--isolation", "chroot")
	}
	args = append(args, buildFlags(opts)...)
	args = append(args, ctxDir)
	if err := run(args...); err != nil {
		return "", fmt.Errorf("build %s with %s: %w", contextDir, builder, err)
	}
	defer func() {
		rmi := exec.CommandContext(context.WithoutCancel(ctx), builder, "rmi", tmpTag)
		if b, err := rmi.CombinedOutput(); err != nil {
			log.Warn("could not remove temporary build image", "builder", builder, "image", tmpTag, "err", err, "output", string(b))
		}
	}()

	switch builder {
	case "buildah", "podman":
		dest := "oci-archive:" + out
		if ref != "" {
			dest += ":" + ref
		}
		os.Remove(out) // the transport refuses to overwrite on some versions
		if err := run("push", tmpTag, dest); err != nil {
			return "", fmt.Errorf("build %s with %s: export: %w", contextDir, builder, err)
		}
	case "docker":
		saved := out + ".docker"
		defer os.Remove(saved)
		if err := run("save", "-o", saved, tmpTag); err != nil {
			return "", fmt.Errorf("build %s with docker: export: %w", contextDir, err)
		}
		f, err := os.Open(saved)
		if err != nil {
			return "", err
		}
		defer f.Close()
		a, err := indexTar(f)
		if err != nil {
			return "", fmt.Errorf("build %s with docker: read saved image: %w", contextDir, err)
		}
		var img v1.Image
		if a.kind() == KindOCIArchive {
			img, _, err = openOCI(a, "")
		} else {
			img, _, err = openDockerSave(saved, "")
		}
		if err != nil {
			return "", fmt.Errorf("build %s with docker: read saved image: %w", contextDir, err)
		}
		if err := WriteOCIArchive(img, ref, out); err != nil {
			return "", err
		}
	}
	log.Info("built Dockerfile", "builder", builder, "archive", out)
	return out, nil
}

func buildFlags(opts DockerBuildOptions) []string {
	var args []string
	for _, k := range sortedKeys(opts.BuildArgs) {
		args = append(args, "--build-arg", k+"="+opts.BuildArgs[k])
	}
	for _, k := range sortedKeys(opts.Labels) {
		args = append(args, "--label", k+"="+opts.Labels[k])
	}
	if opts.Target != "" {
		args = append(args, "--target", opts.Target)
	}
	if opts.NoCache {
		args = append(args, "--no-cache")
	}
	return args
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
