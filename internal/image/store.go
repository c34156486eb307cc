package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/types"
)

// ErrNotFound is returned (wrapped) when no image matches a ref or digest.
var ErrNotFound = types.NewError(types.ErrNotFound, "image not found")

// Bridges for packages that still name the wire types here; new code uses
// the types package.
type (
	// Deprecated: use types.Image.
	Image = types.Image
	// Deprecated: use types.ImageConfig.
	Config = types.ImageConfig
)

// Store holds images under one directory:
//
//	<dir>/images.json           index: ref -> digest, digest -> metadata
//	<dir>/blobs/sha256/<hex>    manifests, configs and compressed layers
//	<dir>/rootfs/<hex>/         unpacked root filesystem of manifest <hex>
//	<dir>/tmp/                  uploads and unpacks in progress
//
// A rootfs directory appears at its final name only when complete (it is
// unpacked under tmp/ and renamed), and the index names a digest only after
// its rootfs exists.
type Store struct {
	dir   string
	log   *slog.Logger
	blobs dirBlobs

	flight singleflight.Group // keyed by digest: one unpack per digest at a time

	mu  sync.Mutex // guards idx and writes of images.json
	idx *indexFile

	unpacks atomic.Int64 // number of rootfs unpacks performed (tests)
}

const indexVersion = 1

type indexFile struct {
	Version int                `json:"version"`
	Refs    map[string]string  `json:"refs"`   // normalized ref -> digest
	Images  map[string]*record `json:"images"` // digest -> metadata
}

type record struct {
	Digest  string            `json:"digest"`
	Config  types.ImageConfig `json:"config"`
	Size    int64             `json:"size"`
	Created time.Time         `json:"created"`
	// Blobs lists the manifest, config and layer digests, for removal.
	Blobs []string `json:"blobs"`
}

// NewStore opens (creating if needed) the image store in dir, usually
// <data-dir>/images. It removes leftovers of interrupted unpacks.
func NewStore(dir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	s := &Store{dir: abs, log: log.With("component", "image"), blobs: dirBlobs{root: filepath.Join(abs, "blobs")}}
	for _, d := range []string{abs, s.blobs.root, filepath.Join(abs, "rootfs"), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image store: create %s: %w", d, err)
		}
	}
	// Anything in tmp/ belongs to an operation that did not finish.
	if entries, err := os.ReadDir(s.tmpDir()); err == nil {
		for _, e := range entries {
			p := filepath.Join(s.tmpDir(), e.Name())
			if err := os.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("image store: clean %s: %w", p, err)
			}
		}
	}
	idx, err := s.loadIndex()
	if err != nil {
		return nil, err
	}
	s.idx = idx
	return s, nil
}

func (s *Store) tmpDir() string    { return filepath.Join(s.dir, "tmp") }
func (s *Store) indexPath() string { return filepath.Join(s.dir, "images.json") }
func (s *Store) rootfsPath(digest string) string {
	return filepath.Join(s.dir, "rootfs", strings.TrimPrefix(digest, "sha256:"))
}

func (s *Store) loadIndex() (*indexFile, error) {
	b, err := os.ReadFile(s.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &indexFile{Version: indexVersion, Refs: map[string]string{}, Images: map[string]*record{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image store: read index: %w", err)
	}
	var idx indexFile
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("image store: index %s is corrupt (%v); move it away to start with an empty store", s.indexPath(), err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("image store: index %s has version %d, this hangar understands %d; upgrade hangar", s.indexPath(), idx.Version, indexVersion)
	}
	if idx.Refs == nil {
		idx.Refs = map[string]string{}
	}
	if idx.Images == nil {
		idx.Images = map[string]*record{}
	}
	return &idx, nil
}

// saveIndexLocked writes images.json atomically: temp file, fsync, rename,
// fsync of the directory.
func (s *Store) saveIndexLocked() error {
	b, err := json.MarshalIndent(s.idx, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(s.indexPath(), b, 0o644)
}

func (s *Store) imageLocked(ref string, r *record) *types.Image {
	return &types.Image{
		Ref:     ref,
		Digest:  r.Digest,
		Config:  cloneConfig(r.Config),
		RootFS:  s.rootfsPath(r.Digest),
		Size:    r.Size,
		Created: r.Created,
	}
}

func cloneConfig(c types.ImageConfig) types.ImageConfig {
	out := c
	out.Entrypoint = append([]string(nil), c.Entrypoint...)
	out.Cmd = append([]string(nil), c.Cmd...)
	out.Env = append([]string(nil), c.Env...)
	out.ExposedPorts = append([]int(nil), c.ExposedPorts...)
	if c.Labels != nil {
		out.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	return out
}

// refsLocked returns the refs naming digest, sorted.
func (s *Store) refsLocked(digest string) []string {
	var refs []string
	for ref, d := range s.idx.Refs {
		if d == digest {
			refs = append(refs, ref)
		}
	}
	sort.Strings(refs)
	return refs
}

// lookupLocked finds an image by ref (local or registry form) or by digest
// (full "sha256:<hex>" or a unique hex prefix of at least 12 characters).
// It returns the ref the image is known by: the matching ref, or when found
// by digest the first of its refs ("" if it has none).
func (s *Store) lookupLocked(q string) (string, *record, error) {
	q = strings.TrimSpace(q)
	if q == "" {
		return "", nil, fmt.Errorf("empty image reference or digest: %w", ErrNotFound)
	}
	hexPart, full, isHex := parseDigestQuery(q)
	if isHex && (strings.HasPrefix(q, "sha256:") || full) {
		return s.lookupDigestLocked(q, hexPart, full)
	}
	var candidates []string
	if r, err := normalizeLocalRef(q); err == nil {
		candidates = append(candidates, r)
	}
	if r, err := normalizeRegistryRef(q); err == nil {
		candidates = append(candidates, r)
	}
	for _, ref := range candidates {
		if d, ok := s.idx.Refs[ref]; ok {
			if r := s.idx.Images[d]; r != nil {
				return ref, r, nil
			}
		}
	}
	if isHex {
		// A bare hex string that names no ref: a digest prefix.
		return s.lookupDigestLocked(q, hexPart, full)
	}
	return "", nil, fmt.Errorf("image %s: %w", q, ErrNotFound)
}

// namesRefLocked reports whether q, as a ref, normalizes to ref.
func (s *Store) namesRefLocked(q, ref string) bool {
	if n, err := normalizeLocalRef(q); err == nil && n == ref {
		return true
	}
	n, err := normalizeRegistryRef(q)
	return err == nil && n == ref
}

// isDigestQuery reports whether q is meant as a digest rather than a ref.
func isDigestQuery(q string) bool {
	q = strings.TrimSpace(q)
	_, full, ok := parseDigestQuery(q)
	return ok && (strings.HasPrefix(q, "sha256:") || full)
}

func (s *Store) lookupDigestLocked(q, hexPart string, full bool) (string, *record, error) {
	var matches []*record
	if full {
		if r := s.idx.Images["sha256:"+hexPart]; r != nil {
			matches = append(matches, r)
		}
	} else {
		for d, r := range s.idx.Images {
			if strings.HasPrefix(d, "sha256:"+hexPart) {
				matches = append(matches, r)
			}
		}
	}
	switch len(matches) {
	case 0:
		return "", nil, fmt.Errorf("image %s: %w", q, ErrNotFound)
	case 1:
		ref := ""
		if refs := s.refsLocked(matches[0].Digest); len(refs) > 0 {
			ref = refs[0]
		}
		return ref, matches[0], nil
	default:
		return "", nil, fmt.Errorf("digest prefix %s matches %d images; give more characters: %w", q, len(matches), ErrNotFound)
	}
}

// Get returns the image named by ref, or with the given digest. The error
// wraps ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, refOrDigest string) (*types.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, r, err := s.lookupLocked(refOrDigest)
	if err != nil {
		return nil, err
	}
	return s.imageLocked(ref, r), nil
}

// List returns one entry per ref, sorted by ref, then any image that has no
// ref (Ref ""), sorted by digest.
func (s *Store) List(ctx context.Context) ([]*types.Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := make([]string, 0, len(s.idx.Refs))
	named := map[string]bool{}
	for ref, d := range s.idx.Refs {
		refs = append(refs, ref)
		named[d] = true
	}
	sort.Strings(refs)
	out := make([]*types.Image, 0, len(refs))
	for _, ref := range refs {
		if r := s.idx.Images[s.idx.Refs[ref]]; r != nil {
			out = append(out, s.imageLocked(ref, r))
		}
	}
	var unnamed []string
	for d := range s.idx.Images {
		if !named[d] {
			unnamed = append(unnamed, d)
		}
	}
	sort.Strings(unnamed)
	for _, d := range unnamed {
		out = append(out, s.imageLocked("", s.idx.Images[d]))
	}
	return out, nil
}

// Remove deletes a ref, or, given a digest, the image and every ref to it.
// When no ref is left to a digest its rootfs and unshared blobs are deleted.
// The caller must make sure no machine still uses the rootfs.
func (s *Store) Remove(ctx context.Context, refOrDigest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, r, err := s.lookupLocked(refOrDigest)
	if err != nil {
		return err
	}
	// A digest (or a hex prefix that names no ref) removes the image and
	// every ref to it; a ref removes that ref only.
	if _, named := s.idx.Refs[ref]; !named || isDigestQuery(refOrDigest) || !s.namesRefLocked(refOrDigest, ref) {
		for _, x := range s.refsLocked(r.Digest) {
			delete(s.idx.Refs, x)
		}
	} else {
		delete(s.idx.Refs, ref)
	}
	if len(s.refsLocked(r.Digest)) > 0 {
		return s.saveIndexLocked()
	}
	delete(s.idx.Images, r.Digest)
	if err := s.saveIndexLocked(); err != nil {
		return err
	}
	// Move the rootfs out of its final name first, so a crash mid-delete
	// never leaves a partial tree where a complete one is expected.
	rootfs := s.rootfsPath(r.Digest)
	trash := filepath.Join(s.tmpDir(), "rm-"+filepath.Base(rootfs)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(rootfs, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("image %s: remove rootfs: %w", r.Digest, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("image %s: remove rootfs: %w", r.Digest, err)
	}
	inUse := map[string]bool{}
	for _, other := range s.idx.Images {
		for _, b := range other.Blobs {
			inUse[b] = true
		}
	}
	for _, b := range r.Blobs {
		if inUse[b] {
			continue
		}
		h, err := v1.NewHash(b)
		if err != nil {
			continue
		}
		if err := s.blobs.remove(h); err != nil {
			return fmt.Errorf("image %s: %w", r.Digest, err)
		}
	}
	s.log.Info("removed image", "digest", r.Digest)
	return nil
}

// OpenImage returns the stored image as a v1.Image read from the store's
// blobs, e.g. to push it to a registry or serve it. The error wraps
// ErrNotFound when there is none.
func (s *Store) OpenImage(ctx context.Context, refOrDigest string) (v1.Image, error) {
	s.mu.Lock()
	_, r, err := s.lookupLocked(refOrDigest)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	h, err := v1.NewHash(r.Digest)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.Digest, err)
	}
	img, err := newBlobImage(s.blobs, v1.Descriptor{Digest: h})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r.Digest, err)
	}
	return img, nil
}

// Put stores img under ref (normalized; "" stores it without a name): its
// blobs are copied into the store and its root filesystem unpacked, once per
// digest even when called concurrently.
func (s *Store) Put(ctx context.Context, img v1.Image, ref string) (*types.Image, error) {
	if ref != "" {
		n, err := normalizeLocalRef(ref)
		if err != nil {
			return nil, err
		}
		ref = n
	}
	return s.put(ctx, img, ref)
}

// put stores img under an already normalized ref.
func (s *Store) put(ctx context.Context, img v1.Image, ref string) (*types.Image, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image %s: digest: %w", ref, err)
	}
	digest := d.String()
	var v any
	for {
		v, err, _ = s.flight.Do(digest, func() (any, error) { return s.ensure(ctx, img, d) })
		// The flight ran with the first caller's context: if that caller gave
		// up but this one did not, run it again.
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		break
	}
	if err != nil {
		return nil, fmt.Errorf("image %s (%s): %w", ref, digest, err)
	}
	rec := v.(*record)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.rootfsPath(digest)); err != nil {
		return nil, fmt.Errorf("image %s (%s): rootfs vanished (removed concurrently?); try again: %w", ref, digest, err)
	}
	if _, ok := s.idx.Images[digest]; !ok {
		s.idx.Images[digest] = rec
	}
	if ref != "" {
		s.idx.Refs[ref] = digest
	}
	if err := s.saveIndexLocked(); err != nil {
		return nil, err
	}
	return s.imageLocked(ref, s.idx.Images[digest]), nil
}

// ensure makes the blobs and the rootfs of img present and returns its
// metadata. It runs once at a time per digest (singleflight).
func (s *Store) ensure(ctx context.Context, img v1.Image, d v1.Hash) (*record, error) {
	digest := d.String()
	s.mu.Lock()
	existing := s.idx.Images[digest]
	s.mu.Unlock()
	rootfs := s.rootfsPath(digest)
	if existing != nil {
		if _, err := os.Stat(rootfs); err == nil {
			return existing, nil
		}
	}

	blobs, err := s.writeBlobs(ctx, img, d)
	if err != nil {
		return nil, err
	}
	// Unpack from the local copy: layers are read once from the source.
	local, err := newBlobImage(s.blobs, v1.Descriptor{Digest: d})
	if err != nil {
		return nil, err
	}
	cf, err := local.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("image is for OS %q; hangar runs linux images", cf.OS)
	}

	if _, err := os.Stat(rootfs); errors.Is(err, fs.ErrNotExist) {
		tmp, err := os.MkdirTemp(s.tmpDir(), "unpack-"+d.Hex[:12]+"-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		start := time.Now()
		s.unpacks.Add(1)
		if err := unpackImage(ctx, local, tmp, s.log); err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return nil, err
		}
		syncDir(tmp)
		if err := os.Rename(tmp, rootfs); err != nil {
			return nil, fmt.Errorf("unpack: move into place: %w", err)
		}
		syncDir(filepath.Dir(rootfs))
		s.log.Info("unpacked image", "digest", digest, "duration", time.Since(start).Round(time.Millisecond))
	} else if err != nil {
		return nil, err
	}
	size, err := diskUsage(rootfs)
	if err != nil {
		return nil, fmt.Errorf("measure rootfs: %w", err)
	}
	created := time.Now().UTC()
	if existing != nil {
		created = existing.Created
	}
	return &record{Digest: digest, Config: configFrom(cf), Size: size, Created: created, Blobs: blobs}, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeBlobs copies img's layers, config and manifest into the blob store
// (layers first, manifest last) and returns their digests.
func (s *Store) writeBlobs(ctx context.Context, img v1.Image, d v1.Hash) ([]string, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	var digests []string
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ld, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if !s.blobs.has(ld) {
			rc, err := l.Compressed()
			if err != nil {
				return nil, fmt.Errorf("layer %d (%s): %w", i, ld, err)
			}
			err = s.blobs.write(ld, &ctxReader{ctx: ctx, r: rc})
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		}
		digests = append(digests, ld.String())
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := s.blobs.write(cd, bytes.NewReader(rawCfg)); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	rawMf, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := s.blobs.write(d, bytes.NewReader(rawMf)); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return append([]string{d.String(), cd.String()}, digests...), nil
}

// configFrom extracts the runtime config of an OCI/Docker config file.
func configFrom(cf *v1.ConfigFile) types.ImageConfig {
	c := cf.Config
	out := types.ImageConfig{
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		Labels:     c.Labels,
	}
	seen := map[int]bool{}
	for p := range c.ExposedPorts {
		num, _, _ := strings.Cut(p, "/")
		if n, err := strconv.Atoi(num); err == nil && n > 0 && n < 65536 && !seen[n] {
			seen[n] = true
			out.ExposedPorts = append(out.ExposedPorts, n)
		}
	}
	sort.Ints(out.ExposedPorts)
	return out
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
