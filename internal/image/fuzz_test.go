package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FuzzUnpackLayer unpacks layers described by a small script, one tar
// entry per line, onto one root: it must never panic and never create
// anything outside the root.
//
// A line is <typeflag><mode><name>[TAB<arg>]: the typeflag is tar's own
// ('0' file, '5' directory, '2' symlink, '1' hard link, '3' device, …, any
// other byte an unknown type), mode is one byte (see scriptMode), arg is a
// file's content or a link's target. A line "--" starts the next layer, so
// whiteouts and replacements meet what lower layers made.
//
// The script, not raw tar bytes, is the input because raw tar made the
// fuzzer stall: a mutated header almost always fails its checksum, and every
// input is at least 1 KiB (512-byte blocks), so minimizing each new
// interesting input (quadratic in its length, one unpack per try) ran into
// the 60 s -fuzzminimizetime cap while "execs" stood still. Each execution
// also reuses one root per worker instead of a t.TempDir, whose random names
// and cleanup made coverage vary from run to run. Raw bytes still reach the
// tar reader through FuzzImportArchive.
func FuzzUnpackLayer(f *testing.F) {
	for _, seed := range []string{
		"0-a/b\tx\n2-l\t/\n0-l/etc/x\ty",
		"2-evil\t/tmp\n0-evil/x\ty\n1-h\tevil/x",
		"5-d/\n0-d/x\n0-d/.wh..wh..opq\n0-.wh.d",
		"0-../x\ty",
		"2-up\t../../..\n0-up/x\ty\n3-dev/null",
		"5-d\n0-d/a\tx\n2-s\td\n--\n0-.wh.d\n0-s/b\ty\n1-h\ts/b",
		"50ro\n0-ro/x\tx\n--\n0sro/y\ty\n5tro",
		"0-f\tx\n--\n5-f\n--\n2-f\t/f",
	} {
		f.Add(seed)
	}
	parent := f.TempDir()
	root := filepath.Join(parent, "root")
	f.Fuzz(func(t *testing.T, script string) {
		layers, ok := scriptLayers(script)
		if !ok {
			return // not encodable as tar; nothing to unpack
		}
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.RemoveAll(root); err != nil {
				t.Fatalf("remove what the input unpacked: %v", err)
			}
		}()
		u, err := newUnpacker(root, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		for _, l := range layers {
			if err := u.applyLayer(context.Background(), bytes.NewReader(l)); err != nil {
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

// scriptLayers turns a FuzzUnpackLayer script into tar streams, at most 4
// layers of at most 64 entries; ok is false when tar cannot encode it.
func scriptLayers(script string) (layers [][]byte, ok bool) {
	for i, part := range strings.Split(script, "\n--\n") {
		if i == 4 {
			break
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for j, line := range strings.Split(part, "\n") {
			if j == 64 || len(line) < 3 {
				continue
			}
			name, arg, _ := strings.Cut(line[2:], "\t")
			hdr := &tar.Header{Typeflag: line[0], Name: name, Mode: scriptMode(line[1]), ModTime: time.Unix(1700000000, 0)}
			switch hdr.Typeflag {
			case tar.TypeReg:
				hdr.Size = int64(len(arg))
			case tar.TypeSymlink, tar.TypeLink:
				hdr.Linkname = arg
			}
			if tw.WriteHeader(hdr) != nil {
				return nil, false
			}
			if hdr.Typeflag == tar.TypeReg {
				if _, err := tw.Write([]byte(arg)); err != nil {
					return nil, false
				}
			}
		}
		if tw.Close() != nil {
			return nil, false
		}
		layers = append(layers, buf.Bytes())
	}
	return layers, true
}

// scriptMode maps a script's mode byte to a tar mode: an octal digit d is
// every permission triad set to d (0: none, 5: r-x, 7: rwx), 's' setuid
// 0o4755, 't' sticky 0o1777, anything else 0o644.
func scriptMode(c byte) int64 {
	switch {
	case c >= '0' && c <= '7':
		return int64(c-'0') * 0o111
	case c == 's':
		return 0o4755
	case c == 't':
		return 0o1777
	}
	return 0o644
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
