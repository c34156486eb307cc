package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
)

// blobSource opens content-addressed blobs. It is implemented by the store's
// own blob directory, by an OCI layout directory and by an OCI archive.
type blobSource interface {
	openBlob(h v1.Hash) (io.ReadCloser, error)
}

// dirBlobs is an OCI-layout style blob directory: <root>/<alg>/<hex>.
type dirBlobs struct{ root string }

func (d dirBlobs) path(h v1.Hash) string { return filepath.Join(d.root, h.Algorithm, h.Hex) }

func (d dirBlobs) openBlob(h v1.Hash) (io.ReadCloser, error) {
	if err := validHash(h); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", h, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return f, nil
}

func (d dirBlobs) has(h v1.Hash) bool {
	_, err := os.Stat(d.path(h))
	return err == nil
}

// write stores r as blob h: into a temp file, verifying the digest, fsynced,
// then renamed into place, so a blob at its final name is always complete.
func (d dirBlobs) write(h v1.Hash, r io.Reader) error {
	if err := validHash(h); err != nil {
		return err
	}
	if d.has(h) {
		return nil
	}
	dir := filepath.Join(d.root, h.Algorithm)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+h.Hex[:12]+"-")
	if err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	hasher := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, hasher), r); err != nil {
		tmp.Close()
		return fmt.Errorf("blob %s: write: %w", h, err)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != h.Hex {
		tmp.Close()
		return fmt.Errorf("blob %s: content has digest sha256:%s; the image is corrupt", h, got)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("blob %s: sync: %w", h, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	if err := os.Rename(tmp.Name(), d.path(h)); err != nil {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	return nil
}

func (d dirBlobs) remove(h v1.Hash) error {
	if err := validHash(h); err != nil {
		return err
	}
	if err := os.Remove(d.path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", h, err)
	}
	return nil
}

func validHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %q: only sha256 is supported", h.String())
	}
	for _, c := range h.Hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("invalid digest %q", h.String())
		}
	}
	return nil
}

func readBlob(src blobSource, h v1.Hash, limit int64) ([]byte, error) {
	rc, err := src.openBlob(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s: larger than %d bytes; not a manifest or config", h, limit)
	}
	got := sha256.Sum256(b)
	if hex.EncodeToString(got[:]) != h.Hex {
		return nil, fmt.Errorf("blob %s: content does not match its digest; the image is corrupt", h)
	}
	return b, nil
}

// maxMetaBlob bounds manifests, indexes and configs read into memory.
const maxMetaBlob = 8 << 20

// blobImage is a v1.Image whose manifest, config and layers are blobs of a
// blobSource. It is built with partial.CompressedToImage.
type blobImage struct {
	src      blobSource
	desc     v1.Descriptor
	raw      []byte
	manifest *v1.Manifest
}

func newBlobImage(src blobSource, desc v1.Descriptor) (v1.Image, error) {
	raw, err := readBlob(src, desc.Digest, maxMetaBlob)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	m, err := v1.ParseManifest(bytesReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	if err := validHash(m.Config.Digest); err != nil {
		return nil, fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
	}
	for _, l := range m.Layers {
		if err := validHash(l.Digest); err != nil {
			return nil, fmt.Errorf("manifest %s: layer: %w", desc.Digest, err)
		}
	}
	return partial.CompressedToImage(&blobImage{src: src, desc: desc, raw: raw, manifest: m})
}

func (b *blobImage) MediaType() (ocitypes.MediaType, error) {
	if b.manifest.MediaType != "" {
		return b.manifest.MediaType, nil
	}
	if b.desc.MediaType != "" {
		return b.desc.MediaType, nil
	}
	return ocitypes.OCIManifestSchema1, nil
}

func (b *blobImage) RawManifest() ([]byte, error) { return b.raw, nil }

func (b *blobImage) RawConfigFile() ([]byte, error) {
	return readBlob(b.src, b.manifest.Config.Digest, maxMetaBlob)
}

func (b *blobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == b.manifest.Config.Digest {
		return &blobLayer{src: b.src, desc: b.manifest.Config}, nil
	}
	for _, l := range b.manifest.Layers {
		if l.Digest == h {
			return &blobLayer{src: b.src, desc: l}, nil
		}
	}
	return nil, fmt.Errorf("manifest %s has no layer %s", b.desc.Digest, h)
}

type blobLayer struct {
	src  blobSource
	desc v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)               { return l.desc.Digest, nil }
func (l *blobLayer) Size() (int64, error)                   { return l.desc.Size, nil }
func (l *blobLayer) MediaType() (ocitypes.MediaType, error) { return l.desc.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)     { return l.src.openBlob(l.desc.Digest) }

// parseIndex decodes an image index (index.json or a nested index blob).
func parseIndex(raw []byte) (*v1.IndexManifest, error) {
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, err
	}
	return &im, nil
}
