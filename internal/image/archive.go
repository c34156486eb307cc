package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// WriteOCIArchive writes img as an OCI archive (a tar of an OCI layout) at
// path, atomically. ref, if not empty, is recorded in index.json (as
// org.opencontainers.image.ref.name and io.containerd.image.name), so
// Import and `buildah pull oci-archive:` find the name.
func WriteOCIArchive(img v1.Image, ref, path string) error {
	dir, err := writeLayout(img, ref, filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after rename
	if err := tarDir(f, dir); err != nil {
		f.Close()
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	return nil
}

// streamOCIArchive writes img as an OCI archive to w (its layout is made
// under tmp first, then removed).
func streamOCIArchive(img v1.Image, ref, tmp string, w io.Writer) error {
	dir, err := writeLayout(img, ref, tmp)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return tarDir(w, dir)
}

// writeLayout writes img as an OCI layout in a new directory under parent,
// with ref (normalized, if not empty) recorded in index.json; the caller
// removes the directory.
func writeLayout(img v1.Image, ref, parent string) (string, error) {
	if ref != "" {
		n, err := normalizeLocalRef(ref)
		if err != nil {
			return "", err
		}
		ref = n
	}
	dir, err := os.MkdirTemp(parent, ".oci-layout-")
	if err != nil {
		return "", err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	var opts []layout.Option
	if ref != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{annotationRefName: ref, annotationContainerdName: ref}))
	}
	if err := lp.AppendImage(img, opts...); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// tarDir writes the regular files and directories under dir to w, sorted,
// with fixed times and owners so the archive is reproducible.
func tarDir(w io.Writer, dir string) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: fi.Size(), ModTime: epoch}); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
