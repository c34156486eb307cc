package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hangar-dev/hangar/internal/types"
)

// GoBuildOptions tune BuildGo. The zero value builds "." for the host
// architecture.
type GoBuildOptions struct {
	// Name is recorded as the org.opencontainers.image.title label.
	Name string
	// Package is the main package to build, relative to srcDir ("." when
	// empty), e.g. "./cmd/server".
	Package string
	// Env is added to the image's environment (KEY=VALUE), after PATH.
	Env []string
	// BuildArgs become environment variables of `go build`, the way
	// Dockerfile ARGs are visible to RUN (e.g. GOEXPERIMENT, GOPRIVATE). They
	// do not end up in the image.
	BuildArgs map[string]string
	// LDFlags is appended to "-s -w" in -ldflags, e.g. "-X main.version=1.2".
	LDFlags string
	// Tags are passed as -tags.
	Tags []string
	// Arch is GOARCH of the image (default: the host's).
	Arch string
	// Cmd is the image's default arguments to /app.
	Cmd []string
	// User the entrypoint runs as ("" = root; "nobody" exists too).
	User string
	// ExposedPorts are recorded in the image config (TCP).
	ExposedPorts []int
	// Labels are added to the image config.
	Labels map[string]string
	// Created is the config's creation time and every file's mtime. The zero
	// value uses the Unix epoch, so the same source gives the same digest.
	Created time.Time
	// Output receives the output of the go tool; when nil it is returned in
	// the error of a failed build.
	Output io.Writer
}

// Paths and files of images made by BuildGo.
const (
	GoBinaryPath = "/app"
	defaultPath  = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	caBundlePath = "etc/ssl/certs/ca-certificates.crt"
	passwdFile   = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	groupFile    = "root:x:0:\nnobody:x:65534:\n"
)

// ErrNoGoModule is returned (wrapped) by BuildGo for a source directory
// that is not inside a Go module: builtin = "go" builds the way `go build`
// does, which needs a go.mod in the directory or a parent.
var ErrNoGoModule = types.NewError(types.ErrInvalid, "not in a Go module")

// hostCABundles are where distributions keep the CA bundle.
var hostCABundles = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/cert.pem",                  // OpenSSL default, macOS
}

// BuildGo is Fly's `builtin = "go"`: it builds the main package in srcDir
// with the host's go toolchain (CGO_ENABLED=0, GOOS=linux, -trimpath,
// -ldflags "-s -w") into a one-layer static image: the binary at /app
// (Entrypoint ["/app"]), /etc/passwd and /etc/group with root and nobody,
// /tmp (1777), the host's CA bundle at /etc/ssl/certs/ca-certificates.crt
// if it has one, and Env PATH=... plus opts.Env. The result is
// reproducible: the same source and options give the same digest.
func BuildGo(ctx context.Context, srcDir string, opts GoBuildOptions) (v1.Image, error) {
	abs, err := filepath.Abs(srcDir)
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("go build %s: source directory not found", srcDir)
	}
	goTool, err := findGo()
	if err != nil {
		return nil, err
	}
	pkg := opts.Package
	if pkg == "" {
		pkg = "."
	}
	arch := opts.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=-trimpath")
	keys := make([]string, 0, len(opts.BuildArgs))
	for k := range opts.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "= \x00") {
			return nil, fmt.Errorf("go build %s: invalid build arg name %q", srcDir, k)
		}
		env = append(env, k+"="+opts.BuildArgs[k])
	}

	// Check first that pkg is a main package: `go build -o` of a library
	// gives a confusing result.
	var listOut bytes.Buffer
	list := exec.CommandContext(ctx, goTool, "list", "-f", "{{.Name}}", pkg)
	list.Dir, list.Env, list.Stdout, list.Stderr = abs, env, &listOut, &listOut
	if err := list.Run(); err != nil {
		if !inGoModule(abs) {
			return nil, fmt.Errorf("go build %s: no go.mod in %s or a parent directory (run `go mod init NAME` there): %w", srcDir, abs, ErrNoGoModule)
		}
		return nil, fmt.Errorf("go build %s: go list %s failed: %w\n%s", srcDir, pkg, err, strings.TrimSpace(listOut.String()))
	}
	if n := strings.TrimSpace(listOut.String()); n != "main" {
		return nil, fmt.Errorf("go build %s: package %s is %q, not a main package; set [build] builtin settings or Package to the directory of package main", srcDir, pkg, n)
	}

	tmp, err := os.MkdirTemp("", "hangar-gobuild-")
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	args := []string{"build", "-o", bin, "-ldflags", strings.TrimSpace("-s -w " + opts.LDFlags)}
	if len(opts.Tags) > 0 {
		args = append(args, "-tags", strings.Join(opts.Tags, ","))
	}
	args = append(args, pkg)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir, cmd.Env = abs, env
	if opts.Output != nil {
		cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s (package %s): %w\n%s", srcDir, pkg, err, strings.TrimSpace(out.String()))
	}

	created := opts.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	layer, hasCA, err := goImageLayer(bin, created)
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}

	cfg := v1.Config{
		Entrypoint: []string{GoBinaryPath},
		Cmd:        opts.Cmd,
		Env:        []string{defaultPath},
		WorkingDir: "/",
		User:       opts.User,
		Labels:     map[string]string{"dev.hangar.builder": "go"},
	}
	if hasCA {
		cfg.Env = append(cfg.Env, "SSL_CERT_FILE=/"+caBundlePath)
	}
	cfg.Env = append(cfg.Env, opts.Env...)
	if opts.Name != "" {
		cfg.Labels["org.opencontainers.image.title"] = opts.Name
	}
	for k, v := range opts.Labels {
		cfg.Labels[k] = v
	}
	if len(opts.ExposedPorts) > 0 {
		cfg.ExposedPorts = map[string]struct{}{}
		for _, p := range opts.ExposedPorts {
			if p <= 0 || p > 65535 {
				return nil, fmt.Errorf("go build %s: exposed port %d out of range 1-65535", srcDir, p)
			}
			cfg.ExposedPorts[strconv.Itoa(p)+"/tcp"] = struct{}{}
		}
	}

	base := mutate.MediaType(empty.Image, ocitypes.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, ocitypes.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	cf.OS = "linux"
	cf.Config = cfg
	cf.Created = v1.Time{Time: created}
	cf.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "hangar builtin go: go build " + pkg, Comment: "hangar"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("go build %s: %w", srcDir, err)
	}
	return img, nil
}

// inGoModule reports whether dir or a parent directory has a go.mod.
func inGoModule(dir string) bool {
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !fi.IsDir() {
			return true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return false
		}
		dir = parent
	}
}

func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "/usr/local/go/bin/go"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("builtin go: the go toolchain is not installed on this host (install Go from https://go.dev/dl and put it on PATH), or build with a Dockerfile")
}

// goImageLayer writes the single layer of a BuildGo image, gzip-compressed,
// in memory.
func goImageLayer(bin string, mtime time.Time) (v1.Layer, bool, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, r io.Reader, size int64) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	f, err := os.Open(bin)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if err := file("app", 0o755, f, fi.Size()); err != nil {
		return nil, false, err
	}
	if err := dir("etc/", 0o755); err != nil {
		return nil, false, err
	}
	if err := file("etc/group", 0o644, strings.NewReader(groupFile), int64(len(groupFile))); err != nil {
		return nil, false, err
	}
	if err := file("etc/passwd", 0o644, strings.NewReader(passwdFile), int64(len(passwdFile))); err != nil {
		return nil, false, err
	}
	var ca []byte
	for _, p := range hostCABundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			ca = b
			break
		}
	}
	if ca != nil {
		for _, d := range []string{"etc/ssl/", "etc/ssl/certs/"} {
			if err := dir(d, 0o755); err != nil {
				return nil, false, err
			}
		}
		if err := file(caBundlePath, 0o644, bytes.NewReader(ca), int64(len(ca))); err != nil {
			return nil, false, err
		}
	}
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, false, err
	}
	if err := tw.Close(); err != nil {
		return nil, false, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if err != nil {
		return nil, false, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, false, err
	}
	if err := zw.Close(); err != nil {
		return nil, false, err
	}
	compressed := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(ocitypes.OCILayer))
	if err != nil {
		return nil, false, err
	}
	return l, ca != nil, nil
}
