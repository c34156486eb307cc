package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
)

// DebianOptions describe an image BuildDebian makes from Debian's
// packages.
type DebianOptions struct {
	// Suite is the Debian release ("bookworm" if empty).
	Suite string
	// Mirror is the archive ("http://deb.debian.org/debian" if empty).
	Mirror string
	// Packages are installed with their dependencies (not their
	// recommendations) on top of the apt variant's base.
	Packages []string
	// Files are written over the root filesystem in a second layer.
	Files []DebianFile
	// Config is the image's config (Entrypoint, Cmd, Env, User,
	// ExposedPorts, Labels). PATH is set when Env has none.
	Config v1.Config
	// Created is the date recorded in the image and in its files
	// (SOURCE_DATE_EPOCH), Unix 0 if zero: with the same packages in the
	// archive, two builds give the same root filesystem.
	Created time.Time
	// Output receives mmdebstrap's progress (discarded if nil).
	Output io.Writer
}

// DebianFile is a file added to a BuildDebian image.
type DebianFile struct {
	Path string // absolute, e.g. /usr/local/bin/start
	Mode int64  // e.g. 0o755
	Data []byte
}

// Defaults of DebianOptions.
const (
	DefaultDebianSuite  = "bookworm"
	DefaultDebianMirror = "http://deb.debian.org/debian"
)

// ErrNoMmdebstrap is returned (wrapped) when mmdebstrap is missing.
var ErrNoMmdebstrap = errors.New("mmdebstrap is not installed")

// DebianDigest is a short digest of what decides a BuildDebian image's
// content (suite, mirror, sorted packages, files, config): the cache key
// to name the image by, so a changed package set or start script gets a
// new image and an unchanged one is not built again.
func DebianDigest(o DebianOptions) string {
	o = o.withDefaults()
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nmirror=%s\n", o.Suite, o.Mirror)
	pk := slices.Clone(o.Packages)
	slices.Sort(pk)
	fmt.Fprintf(h, "packages=%s\n", strings.Join(pk, ","))
	for _, f := range o.Files {
		fmt.Fprintf(h, "file=%s mode=%o size=%d\n", f.Path, f.Mode, len(f.Data))
		h.Write(f.Data)
	}
	fmt.Fprintf(h, "entrypoint=%q cmd=%q env=%q user=%q workdir=%q\n", o.Config.Entrypoint, o.Config.Cmd, o.Config.Env, o.Config.User, o.Config.WorkingDir)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (o DebianOptions) withDefaults() DebianOptions {
	if o.Suite == "" {
		o.Suite = DefaultDebianSuite
	}
	if o.Mirror == "" {
		o.Mirror = DefaultDebianMirror
	}
	return o
}

// BuildDebian makes an image from Debian's packages with mmdebstrap: a
// minimal root filesystem (the apt variant) with opts.Packages installed,
// documentation and translations left out (copyright files kept), device
// nodes left out (the runtime provides /dev), then opts.Files as a second
// layer. It needs root (mmdebstrap's root mode) and the mirror reachable;
// a first build downloads the packages and takes minutes.
func BuildDebian(ctx context.Context, opts DebianOptions) (v1.Image, error) {
	opts = opts.withDefaults()
	if len(opts.Packages) == 0 {
		return nil, errors.New("debian image: no packages given")
	}
	for _, p := range opts.Packages {
		if p == "" || strings.ContainsAny(p, ", \t\n'\"$`\\") || strings.HasPrefix(p, "-") {
			return nil, fmt.Errorf("debian image: %q is not a package name", p)
		}
	}
	for _, f := range opts.Files {
		if !strings.HasPrefix(f.Path, "/") || strings.Contains(f.Path, "..") || f.Path == "/" {
			return nil, fmt.Errorf("debian image: file path %q: want an absolute path without ..", f.Path)
		}
	}
	tool, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return nil, fmt.Errorf("debian image: %w (apt-get install mmdebstrap)", ErrNoMmdebstrap)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("debian image: building needs root (mmdebstrap's root mode); run it as root on the Hangar host")
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()
	tmp, err := os.MkdirTemp("", "hangar-debian-")
	if err != nil {
		return nil, fmt.Errorf("debian image: %w", err)
	}
	defer os.RemoveAll(tmp)
	rootTar := filepath.Join(tmp, "rootfs.tar")
	args := []string{
		"--variant=apt",
		"--include=" + strings.Join(opts.Packages, ","),
		"--format=tar",
		"--skip=output/dev",
		"--aptopt=Acquire::Retries \"3\"",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/info/*",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		opts.Suite, rootTar, opts.Mirror,
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(created.Unix(), 10), "TMPDIR="+tmp)
	if opts.Output != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(opts.Output, &out), io.MultiWriter(opts.Output, &out)
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("debian image: mmdebstrap %s with %s from %s: %w\n%s (is the mirror reachable? are the package names right for %s?)",
			opts.Suite, strings.Join(opts.Packages, ","), opts.Mirror, err, tail(out.String(), 1500), opts.Suite)
	}
	base, err := gzipLayerFile(rootTar, filepath.Join(tmp, "rootfs.tar.gz"))
	if err != nil {
		return nil, fmt.Errorf("debian image: %w", err)
	}
	layers := []v1.Layer{base}
	if len(opts.Files) > 0 {
		extra, err := filesLayer(opts.Files, created)
		if err != nil {
			return nil, fmt.Errorf("debian image: %w", err)
		}
		layers = append(layers, extra)
	}
	img := mutate.MediaType(empty.Image, ocitypes.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, ocitypes.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("debian image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("debian image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = opts.Config
	if !slices.ContainsFunc(cf.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		cf.Config.Env = append([]string{defaultPath}, cf.Config.Env...)
	}
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["dev.hangar.builder"] = "debian"
	cf.Config.Labels["dev.hangar.debian.suite"] = opts.Suite
	cf.Config.Labels["dev.hangar.debian.packages"] = strings.Join(opts.Packages, ",")
	cf.Created = v1.Time{Time: created}
	cf.History = []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "hangar: mmdebstrap " + opts.Suite + " " + strings.Join(opts.Packages, ",")}}
	if len(layers) > 1 {
		cf.History = append(cf.History, v1.History{Created: v1.Time{Time: created}, CreatedBy: "hangar: files"})
	}
	return mutate.ConfigFile(img, cf)
}

// gzipLayerFile compresses a tar file into dst (fast level) and returns it
// as a layer read from dst.
func gzipLayerFile(src, dst string) (v1.Layer, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return nil, err
	}
	zw, _ := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if _, err := io.Copy(zw, in); err != nil {
		out.Close()
		return nil, fmt.Errorf("compress the root filesystem: %w", err)
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	// The temp dir goes when BuildDebian returns and callers write the
	// image out after that: keep the compressed blob in memory (a few
	// hundred MB at most, for the length of a build).
	b, err := os.ReadFile(dst)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(ocitypes.OCILayer))
}

// filesLayer is a layer with the given files (and their parent
// directories, 0755).
func filesLayer(files []DebianFile, mtime time.Time) (v1.Layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	made := map[string]bool{}
	for _, f := range files {
		rel := strings.TrimPrefix(filepath.Clean(f.Path), "/")
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if !made[d] {
				made[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
					return nil, err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithMediaType(ocitypes.OCILayer))
}
