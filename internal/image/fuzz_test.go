package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FuzzUnpackLayer feeds arbitrary bytes to the layer unpacker as a tar
// stream (applied twice, as two layers): it must never panic and never
// create anything outside the root.
func FuzzUnpackLayer(f *testing.F) {
	f.Add(tarBytes(f, file("a/b", "x"), symlink("l", "/"), file("l/etc/x", "y")))
	f.Add(tarBytes(f, symlink("evil", "/tmp"), file("evil/x", "y"), hardlink("h", "evil/x")))
	f.Add(tarBytes(f, dir("d/"), file("d/x", ""), file("d/.wh..wh..opq", ""), file(".wh.d", "")))
	f.Add(tarBytes(f, file("../x", "y")))
	f.Add(tarBytes(f, symlink("up", "../../.."), file("up/x", "y"), device("dev/null")))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		u, err := newUnpacker(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for range 2 {
			if err := u.applyLayer(context.Background(), bytes.NewReader(data)); err != nil {
				break
			}
		}
		u.finish()
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "root" {
			t.Fatalf("unpack created files outside the root: %v", entries)
		}
	})
}

// FuzzImportArchive feeds arbitrary bytes to Import as an archive file (OCI
// archive or docker save detection, index parsing, blob lookup, unpack): it
// must return an image or an error, never panic.
func FuzzImportArchive(f *testing.F) {
	dir := f.TempDir()
	small := layeredImage(f, tarBytes(f, file("hello", "world"), symlink("s", "/hello")))
	oci := filepath.Join(dir, "oci.tar")
	if err := WriteOCIArchive(small, "small:v1", oci); err != nil {
		f.Fatal(err)
	}
	docker := filepath.Join(dir, "docker.tar")
	if err := tarball.WriteToFile(docker, mustTag(f, "small:v1"), small); err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{oci, docker} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(tarBytes(f, file("oci-layout", `{"imageLayoutVersion":"1.0.0"}`), file("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1}]}`)))
	f.Add(tarBytes(f, file("manifest.json", `[{"Config":"../../etc/passwd","RepoTags":["x:y"],"Layers":["/etc/shadow"]}]`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp := t.TempDir()
		p := filepath.Join(tmp, "in.tar")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := NewStore(filepath.Join(tmp, "store"), nil)
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Import(context.Background(), p, "")
		if err == nil && (img.Ref == "" || img.RootFS == "") {
			t.Fatalf("Import returned an incomplete image: %+v", img)
		}
	})
}

func mustTag(t testing.TB, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}
