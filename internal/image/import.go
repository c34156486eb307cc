package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hangar-dev/hangar/internal/types"
)

// Annotations that carry an image's name in an OCI layout's index.json.
const (
	annotationRefName        = "org.opencontainers.image.ref.name"
	annotationContainerdName = "io.containerd.image.name"
)

// ArchiveKind is the format of something Import was given.
type ArchiveKind string

// The formats Import understands.
const (
	KindOCILayout  ArchiveKind = "oci-layout"  // a directory with oci-layout and index.json
	KindOCIArchive ArchiveKind = "oci-archive" // a tar of an OCI layout
	KindDockerSave ArchiveKind = "docker-save" // a `docker save` tarball (manifest.json)
)

// Import stores the image at path, which may be an OCI layout directory, an
// OCI archive (a tar of a layout, as `buildah push oci-archive:` writes) or a
// `docker save` tarball, optionally gzip-compressed; the kind is detected.
// With ref "" the name comes from the archive (the index.json annotation or
// the RepoTags of manifest.json); if it has none, Import fails with a hint.
func (s *Store) Import(ctx context.Context, p, ref string) (*types.Image, error) {
	if ref != "" {
		n, err := normalizeLocalRef(ref)
		if err != nil {
			return nil, err
		}
		ref = n
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	if fi.IsDir() {
		img, name, err := openLayoutDir(p, ref)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", p, err)
		}
		return s.importImage(ctx, p, img, ref, name)
	}

	return s.importFile(ctx, p, p, ref)
}

// importFile imports the archive file p; display names it in messages (the
// original path when p is a decompressed spool file).
func (s *Store) importFile(ctx context.Context, p, display, ref string) (*types.Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", display, err)
	}
	defer f.Close()
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		// Decompress to a spool file: archives need random access.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("import %s: %w", display, err)
		}
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			return nil, fmt.Errorf("import %s: gzip: %w", display, err)
		}
		spool, err := s.spool(ctx, zr)
		if err != nil {
			return nil, fmt.Errorf("import %s: decompress: %w", display, err)
		}
		defer os.Remove(spool)
		return s.importFile(ctx, spool, display, ref)
	}

	a, err := indexTar(f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", display, err)
	}
	var (
		img  v1.Image
		name string
	)
	switch a.kind() {
	case KindOCIArchive:
		img, name, err = openOCI(a, ref)
		if err == nil && name == "" && ref == "" {
			name = a.dockerRepoTag()
		}
	case KindDockerSave:
		img, name, err = openDockerSave(p, ref)
	default:
		err = fmt.Errorf("not an image archive: expected an OCI archive (oci-layout and index.json) or a `docker save` tarball (manifest.json); create one with `buildah push IMAGE oci-archive:FILE` or `docker save -o FILE IMAGE`")
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", display, err)
	}
	return s.importImage(ctx, display, img, ref, name)
}

func (s *Store) importImage(ctx context.Context, p string, img v1.Image, ref, archiveName string) (*types.Image, error) {
	if ref == "" {
		if archiveName == "" {
			return nil, fmt.Errorf("import %s: the archive does not name the image; pass a ref, e.g. --ref myapp:v1", p)
		}
		n, err := normalizeLocalRef(archiveName)
		if err != nil {
			return nil, fmt.Errorf("import %s: the archive names the image %q, which is not a valid ref; pass a ref, e.g. --ref myapp:v1", p, archiveName)
		}
		ref = n
	}
	out, err := s.put(ctx, img, ref)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", p, err)
	}
	s.log.Info("imported image", "ref", out.Ref, "digest", out.Digest, "from", p)
	return out, nil
}

// ImportReader imports an archive read from r (an upload): it is spooled to
// a temp file in the store, then imported like Import. A directory layout
// cannot be streamed; send it as a tar.
func (s *Store) ImportReader(ctx context.Context, r io.Reader, ref string) (*types.Image, error) {
	if ref != "" {
		n, err := normalizeLocalRef(ref)
		if err != nil {
			return nil, err
		}
		ref = n
	}
	p, err := s.spool(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("import upload: %w", err)
	}
	defer os.Remove(p)
	return s.importFile(ctx, p, "upload", ref)
}

func (s *Store) spool(ctx context.Context, r io.Reader) (string, error) {
	f, err := os.CreateTemp(s.tmpDir(), "upload-")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: r}); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// DetectArchive reports the kind of the image archive or directory at p.
func DetectArchive(p string) (ArchiveKind, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(p, "index.json")); err != nil {
			return "", fmt.Errorf("%s: a directory without index.json is not an OCI layout", p)
		}
		return KindOCILayout, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	a, err := indexTar(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if k := a.kind(); k != "" {
		return k, nil
	}
	return "", fmt.Errorf("%s: not an OCI archive or docker save tarball", p)
}

// tarIndex locates the regular files of a tar archive without extracting
// it: name -> section of the underlying file.
type tarIndex struct {
	f     io.ReaderAt
	files map[string]tarFile
}

type tarFile struct{ off, size int64 }

// maxTarEntries bounds the index of an archive; image archives hold a few
// files per layer.
const maxTarEntries = 1 << 16

func indexTar(f io.ReadSeeker) (*tarIndex, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, errors.New("archive is not seekable")
	}
	a := &tarIndex{f: ra, files: map[string]tarFile{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w (is this an image archive?)", err)
		}
		if len(a.files) >= maxTarEntries {
			return nil, fmt.Errorf("archive has more than %d entries; not an image archive", maxTarEntries)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return nil, err
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		a.files[name] = tarFile{off: off, size: hdr.Size}
	}
	return a, nil
}

func (a *tarIndex) kind() ArchiveKind {
	_, layout := a.files["oci-layout"]
	_, index := a.files["index.json"]
	_, manifest := a.files["manifest.json"]
	switch {
	case layout && index:
		return KindOCIArchive
	case manifest:
		return KindDockerSave
	}
	return ""
}

func (a *tarIndex) open(name string) (io.ReadCloser, error) {
	tf, ok := a.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(io.NewSectionReader(a.f, tf.off, tf.size)), nil
}

func (a *tarIndex) readSmall(name string) ([]byte, error) {
	rc, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxMetaBlob+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetaBlob {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxMetaBlob)
	}
	return b, nil
}

func (a *tarIndex) openBlob(h v1.Hash) (io.ReadCloser, error) {
	if err := validHash(h); err != nil {
		return nil, err
	}
	return a.open(path.Join("blobs", h.Algorithm, h.Hex))
}

// dockerRepoTag returns the first RepoTag of a manifest.json, if any (docker
// 25+ writes both an OCI layout and manifest.json).
func (a *tarIndex) dockerRepoTag() string {
	b, err := a.readSmall("manifest.json")
	if err != nil {
		return ""
	}
	var m tarball.Manifest
	if json.Unmarshal(b, &m) != nil || len(m) != 1 || len(m[0].RepoTags) == 0 {
		return ""
	}
	return m[0].RepoTags[0]
}

func openLayoutDir(dir, ref string) (v1.Image, string, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, "manifest.json")); err2 == nil {
			return nil, "", fmt.Errorf("an unpacked `docker save` directory is not supported; import the tarball itself, or tar the directory: tar -C %s -cf image.tar .", dir)
		}
		return nil, "", fmt.Errorf("not an OCI layout (no index.json): %w", err)
	}
	src := dirBlobs{root: filepath.Join(dir, "blobs")}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, "", err
	}
	return selectImage(src, raw, ref)
}

func openOCI(a *tarIndex, ref string) (v1.Image, string, error) {
	raw, err := a.readSmall("index.json")
	if err != nil {
		return nil, "", err
	}
	return selectImage(a, raw, ref)
}

// nameOf returns the image name an index descriptor carries, if it is a
// usable ref (not a bare tag).
func nameOf(d v1.Descriptor) string {
	if n := d.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	n := d.Annotations[annotationRefName]
	if n == "" {
		return ""
	}
	if _, err := normalizeLocalRef(n); err != nil {
		return ""
	}
	if !strings.ContainsAny(n, ":/@") {
		return "" // a bare tag such as "latest" names no repository
	}
	return n
}

// selectImage picks the image of an OCI index: the one whose name matches
// ref, else the only one. Nested indexes (multi-platform) resolve to the
// linux image of this host's architecture.
func selectImage(src blobSource, rawIndex []byte, ref string) (v1.Image, string, error) {
	im, err := parseIndex(rawIndex)
	if err != nil {
		return nil, "", fmt.Errorf("index.json: %w", err)
	}
	if len(im.Manifests) == 0 {
		return nil, "", errors.New("index.json lists no images")
	}
	var chosen *v1.Descriptor
	if ref != "" {
		for i, d := range im.Manifests {
			if n := nameOf(d); n != "" {
				if norm, err := normalizeLocalRef(n); err == nil && norm == ref {
					chosen = &im.Manifests[i]
					break
				}
			}
		}
	}
	if chosen == nil {
		if len(im.Manifests) != 1 {
			var names []string
			for _, d := range im.Manifests {
				if n := nameOf(d); n != "" {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			if ref != "" {
				return nil, "", fmt.Errorf("the archive holds %d images and none is named %s (names: %s); pass one of those names as the ref", len(im.Manifests), ref, strings.Join(names, ", "))
			}
			return nil, "", fmt.Errorf("the archive holds %d images (names: %s); pass the ref of the one to import", len(im.Manifests), strings.Join(names, ", "))
		}
		chosen = &im.Manifests[0]
	}
	img, err := resolveDescriptor(src, *chosen, 0)
	if err != nil {
		return nil, "", err
	}
	return img, nameOf(*chosen), nil
}

func resolveDescriptor(src blobSource, d v1.Descriptor, depth int) (v1.Image, error) {
	if depth > 4 {
		return nil, errors.New("image indexes nested too deeply")
	}
	switch d.MediaType {
	case ocitypes.OCIManifestSchema1, ocitypes.DockerManifestSchema2:
		return newBlobImage(src, d)
	case ocitypes.OCIImageIndex, ocitypes.DockerManifestList:
	default:
		// Unknown or missing media type: look at the document.
		raw, err := readBlob(src, d.Digest, maxMetaBlob)
		if err != nil {
			return nil, err
		}
		var probe struct {
			Manifests json.RawMessage `json:"manifests"`
			Layers    json.RawMessage `json:"layers"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		if probe.Manifests == nil {
			return newBlobImage(src, d)
		}
	}
	raw, err := readBlob(src, d.Digest, maxMetaBlob)
	if err != nil {
		return nil, err
	}
	im, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
		if m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH {
			return resolveDescriptor(src, m, depth+1)
		}
	}
	return nil, fmt.Errorf("index %s has no linux/%s image (has %s)", d.Digest, runtime.GOARCH, strings.Join(platforms, ", "))
}

func openDockerSave(p, ref string) (v1.Image, string, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(p) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, "", fmt.Errorf("manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, "", errors.New("manifest.json lists no images")
	}
	var (
		tag     *name.Tag
		tagName string
	)
	if ref != "" {
		for _, d := range m {
			for _, t := range d.RepoTags {
				if n, err := normalizeLocalRef(t); err == nil && n == ref {
					if nt, err := name.NewTag(t); err == nil {
						tag, tagName = &nt, t
					}
				}
			}
		}
	}
	if tag == nil {
		if len(m) != 1 {
			var names []string
			for _, d := range m {
				names = append(names, d.RepoTags...)
			}
			return nil, "", fmt.Errorf("the tarball holds %d images (tags: %s); pass the ref of the one to import", len(m), strings.Join(names, ", "))
		}
		if len(m[0].RepoTags) > 0 {
			tagName = m[0].RepoTags[0]
		}
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, "", err
	}
	return img, tagName, nil
}
