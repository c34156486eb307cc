package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Whiteout markers of the OCI image layer spec.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	maxSymlinkHops = 40
)

// ErrUnsafeLayer marks a layer whose tar stream tries to write outside the
// root filesystem (a ".." path or a hard link pointing outside).
var ErrUnsafeLayer = errors.New("unsafe layer")

// unpacker applies layer tar streams, in order, onto one directory. Every
// file operation goes through an os.Root, and paths are resolved by
// resolveDir, which interprets symlinks relative to the root the way the
// container will see them, so a hostile layer can never touch the host.
type unpacker struct {
	root  *os.Root
	chown bool // running as root: keep the uid/gid of tar entries
	log   *slog.Logger

	dirs    map[string]dirMeta  // applied after all layers (mode could forbid writes)
	current map[string]struct{} // paths written by the layer being applied
	skipped int                 // device nodes and fifos
}

type dirMeta struct {
	mode  fs.FileMode
	mtime time.Time
}

func newUnpacker(dir string, log *slog.Logger) (*unpacker, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &unpacker{root: root, chown: os.Geteuid() == 0, log: log, dirs: map[string]dirMeta{}}, nil
}

func (u *unpacker) Close() error { return u.root.Close() }

// unpackImage extracts every layer of img into dir (which must exist and be
// empty), verifying each layer's uncompressed digest against the config's
// diff_ids.
func unpackImage(ctx context.Context, img v1.Image, dir string, log *slog.Logger) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if len(cf.RootFS.DiffIDs) != 0 && len(cf.RootFS.DiffIDs) != len(layers) {
		return fmt.Errorf("config lists %d diff_ids but the manifest has %d layers; the image is corrupt", len(cf.RootFS.DiffIDs), len(layers))
	}
	u, err := newUnpacker(dir, log)
	if err != nil {
		return err
	}
	defer u.Close()
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
		h := sha256.New()
		err = u.applyLayer(ctx, io.TeeReader(rc, h))
		if err == nil {
			// Drain tar padding so the diff ID covers the whole stream.
			_, err = io.Copy(h, rc)
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
		if len(cf.RootFS.DiffIDs) != 0 {
			if want := cf.RootFS.DiffIDs[i]; want.Hex != sumHex(h) {
				return fmt.Errorf("layer %d (%s): uncompressed content has digest sha256:%s, config says %s; the image is corrupt", i, d, sumHex(h), want)
			}
		}
	}
	if err := u.finish(); err != nil {
		return err
	}
	if u.skipped > 0 {
		log.Debug("skipped device nodes and fifos while unpacking", "count", u.skipped)
	}
	return nil
}

func sumHex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// cleanEntryName turns a tar entry name into a clean relative path ("." for
// the root). Leading slashes are dropped (the entry is relative to the root);
// a ".." component is rejected rather than clamped: no valid layer has one.
func cleanEntryName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: tar entry %q contains a NUL byte", ErrUnsafeLayer, name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: tar entry %q contains \"..\" and would escape the root filesystem; the image is corrupt or hostile", ErrUnsafeLayer, name)
		}
	}
	p := path.Clean("/" + name)
	if p == "/" {
		return ".", nil
	}
	return p[1:], nil
}

// applyLayer applies one uncompressed layer tar stream.
func (u *unpacker) applyLayer(ctx context.Context, r io.Reader) error {
	u.current = map[string]struct{}{}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := u.applyEntry(hdr, tr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
}

func (u *unpacker) applyEntry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if isSparse(hdr) {
		// A few bytes of sparse map can describe terabytes of zeros; image
		// builders never write sparse entries.
		return fmt.Errorf("%w: sparse file entries are not supported", ErrUnsafeLayer)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			u.dirs["."] = dirMeta{mode: hdr.FileInfo().Mode(), mtime: hdr.ModTime}
		}
		return nil
	}
	base := path.Base(name)
	parent, err := u.resolveDir(path.Dir(name))
	if err != nil {
		return err
	}

	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parent, base)
	}

	if parent != "." {
		if err := u.root.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("create parent %s: %w", parent, err)
		}
	}
	target := path.Join(parent, base)
	existing, err := u.root.Lstat(target)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if exists && !existing.IsDir() {
			if err := u.root.Remove(target); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := u.root.Mkdir(target, 0o755); err != nil {
				return err
			}
		}
		u.dirs[target] = dirMeta{mode: hdr.FileInfo().Mode(), mtime: hdr.ModTime}
		if err := u.lchown(target, hdr); err != nil {
			return err
		}

	case tar.TypeReg, tar.TypeRegA:
		if err := u.clear(target, existing, exists); err != nil {
			return err
		}
		f, err := u.root.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", target, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		// chown before chmod: chown clears setuid/setgid bits.
		if err := u.lchown(target, hdr); err != nil {
			return err
		}
		if err := u.root.Chmod(target, hdr.FileInfo().Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		if err := u.root.Chtimes(target, hdr.ModTime, hdr.ModTime); err != nil {
			return err
		}

	case tar.TypeSymlink:
		// The target is data for the container and is stored verbatim; it is
		// never followed on the host except through resolveDir.
		if err := u.clear(target, existing, exists); err != nil {
			return err
		}
		if err := u.root.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
		if err := u.lchown(target, hdr); err != nil {
			return err
		}

	case tar.TypeLink:
		ln, err := cleanEntryName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		if ln == "." {
			return fmt.Errorf("%w: hard link to the root directory", ErrUnsafeLayer)
		}
		lparent, err := u.resolveDir(path.Dir(ln))
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		src := path.Join(lparent, path.Base(ln))
		fi, err := u.root.Lstat(src)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if fi.IsDir() {
			return fmt.Errorf("%w: hard link to directory %q", ErrUnsafeLayer, hdr.Linkname)
		}
		if src == target {
			break
		}
		if err := u.clear(target, existing, exists); err != nil {
			return err
		}
		if err := u.root.Link(src, target); err != nil {
			return err
		}

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// The runtime provides /dev; device nodes from an image are not made.
		u.skipped++
		return nil

	default:
		// PAX global headers, GNU long-name records already folded in, and
		// unknown types carry no file.
		return nil
	}
	u.current[target] = struct{}{}
	return nil
}

// clear removes whatever exists at target before a non-directory replaces it.
func (u *unpacker) clear(target string, existing fs.FileInfo, exists bool) error {
	if !exists {
		return nil
	}
	if existing.IsDir() {
		return u.root.RemoveAll(target)
	}
	return u.root.Remove(target)
}

func (u *unpacker) lchown(target string, hdr *tar.Header) error {
	if !u.chown {
		return nil
	}
	if err := u.root.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown %s: %w", target, err)
	}
	return nil
}

// whiteout applies ".wh.<name>" (delete name from lower layers) or the opaque
// marker (hide everything lower layers put in the directory).
func (u *unpacker) whiteout(parent, base string) error {
	if base == whiteoutOpaque {
		f, err := u.root.Open(parent)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		entries, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(parent, e.Name())
			if _, ok := u.current[p]; ok {
				continue
			}
			if err := u.root.RemoveAll(p); err != nil {
				return err
			}
		}
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return fmt.Errorf("%w: invalid whiteout %q", ErrUnsafeLayer, base)
	}
	p := path.Join(parent, victim)
	if _, ok := u.current[p]; ok {
		return nil // whiteouts apply to lower layers only
	}
	if err := u.root.RemoveAll(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// resolveDir resolves p (a clean relative path) to a path with no symlinks in
// it, following symlinks as the container would: absolute targets are
// relative to the root and ".." stops at the root. Missing components are
// returned as they are (the caller creates them); a non-directory in the way
// is removed, as a later layer replacing it would.
func (u *unpacker) resolveDir(p string) (string, error) {
	var resolved []string
	rest := splitPath(p)
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		cand := path.Join(append(resolved[:len(resolved):len(resolved)], c)...)
		fi, err := u.root.Lstat(cand)
		switch {
		case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
			resolved = append(resolved, c)
			continue
		case err != nil:
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			hops++
			if hops > maxSymlinkHops {
				return "", fmt.Errorf("resolve %q: too many levels of symbolic links", p)
			}
			target, err := u.root.Readlink(cand)
			if err != nil {
				return "", err
			}
			if path.IsAbs(target) {
				resolved = resolved[:0]
			}
			rest = append(splitPath(target), rest...)
			continue
		}
		if !fi.IsDir() {
			if err := u.root.Remove(cand); err != nil {
				return "", err
			}
		}
		resolved = append(resolved, c)
	}
	if len(resolved) == 0 {
		return ".", nil
	}
	return path.Join(resolved...), nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

func splitPath(p string) []string {
	return strings.FieldsFunc(p, func(r rune) bool { return r == '/' })
}

// finish applies directory modes and times, deepest first, skipping
// directories later removed or replaced.
func (u *unpacker) finish() error {
	paths := make([]string, 0, len(u.dirs))
	for p := range u.dirs {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") > strings.Count(paths[j], "/") })
	for _, p := range paths {
		fi, err := u.root.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue
		}
		m := u.dirs[p]
		if err := u.root.Chmod(p, m.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
		if err := u.root.Chtimes(p, m.mtime, m.mtime); err != nil {
			return fmt.Errorf("chtimes %s: %w", p, err)
		}
	}
	return nil
}

// diskUsage sums the sizes of regular files under dir, counting hard links
// once.
func diskUsage(dir string) (int64, error) {
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += fi.Size()
		return nil
	})
	return total, err
}
