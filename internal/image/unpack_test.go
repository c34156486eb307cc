package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeLink, mode: 0o644}
}
func device(name string) entry { return entry{name: name, typ: tar.TypeChar, mode: 0o666} }

func tarBytes(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layeredImage makes an image whose layers are the given tar streams.
func layeredImage(t testing.TB, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNotExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v), want it absent", p, err)
	}
}

func TestUnpackWhiteoutsAndLinks(t *testing.T) {
	t.Parallel()
	l1 := tarBytes(t,
		dir("a/"), file("a/b/c", "c"), file("a/keep", "keep"),
		dir("d/"), file("d/x", "x"), file("d/y", "y"),
		file("replaced", "old"), dir("dir-to-file/"), file("dir-to-file/z", "z"),
		file("bin-real/tool", "tool"), symlink("bin", "bin-real"),
		file("orig", "linked"), hardlink("hard", "orig"),
		device("dev/null"),
	)
	l2 := tarBytes(t,
		file("a/.wh.b", ""),
		file("d/new", "new"), file("d/.wh..wh..opq", ""),
		file("replaced", "new"), file("dir-to-file", "now a file"),
		file("bin/added", "via symlink"), // resolved through bin -> bin-real
		file(".wh.missing", ""),
	)
	s := newTestStore(t)
	img, err := s.Put(context.Background(), layeredImage(t, l1, l2), "layers:v1")
	if err != nil {
		t.Fatal(err)
	}
	r := img.RootFS
	mustNotExist(t, filepath.Join(r, "a/b"))
	if readFile(t, filepath.Join(r, "a/keep")) != "keep" {
		t.Error("a/keep lost")
	}
	mustNotExist(t, filepath.Join(r, "d/x"))
	mustNotExist(t, filepath.Join(r, "d/y"))
	if readFile(t, filepath.Join(r, "d/new")) != "new" {
		t.Error("d/new (same layer as the opaque marker) lost")
	}
	if readFile(t, filepath.Join(r, "replaced")) != "new" || readFile(t, filepath.Join(r, "dir-to-file")) != "now a file" {
		t.Error("later layer did not replace")
	}
	if readFile(t, filepath.Join(r, "bin-real/added")) != "via symlink" {
		t.Error("file under a symlinked dir not placed in its target")
	}
	if target, err := os.Readlink(filepath.Join(r, "bin")); err != nil || target != "bin-real" {
		t.Errorf("symlink bin = %q, %v", target, err)
	}
	a, _ := os.Stat(filepath.Join(r, "orig"))
	b, _ := os.Stat(filepath.Join(r, "hard"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("hard link not made")
	}
	mustNotExist(t, filepath.Join(r, "dev/null"))
	for _, wh := range []string{"a/.wh.b", "d/.wh..wh..opq", ".wh.missing"} {
		mustNotExist(t, filepath.Join(r, wh))
	}
}

// TestUnpackHostile checks that layers cannot write outside the rootfs.
func TestUnpackHostile(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "sentinel")
	write(t, sentinel, "untouched")

	for _, tc := range []struct {
		name   string
		layers [][]byte
		reject bool   // Put must fail with ErrUnsafeLayer
		inside string // else: this path inside the rootfs holds "pwned"
	}{
		{name: "dotdot file", layers: [][]byte{tarBytes(t, file("../../../../../"+sentinel, "pwned"))}, reject: true},
		{name: "dotdot in middle", layers: [][]byte{tarBytes(t, file("a/../../x", "pwned"))}, reject: true},
		{name: "dotdot hardlink", layers: [][]byte{tarBytes(t, hardlink("h", "../../../../../"+sentinel))}, reject: true},
		{name: "absolute symlink dir", layers: [][]byte{tarBytes(t, symlink("evil", outside), file("evil/sentinel", "pwned"))}, inside: filepath.Join(outside, "sentinel")},
		{name: "absolute symlink across layers", layers: [][]byte{tarBytes(t, symlink("evil", outside)), tarBytes(t, file("evil/sentinel", "pwned"))}, inside: filepath.Join(outside, "sentinel")},
		{name: "relative symlink climbing", layers: [][]byte{tarBytes(t, symlink("up", "../../../../../../.."+outside)), tarBytes(t, file("up/sentinel", "pwned"))}, inside: filepath.Join(outside, "sentinel")},
		{name: "absolute file name", layers: [][]byte{tarBytes(t, file(sentinel, "pwned"))}, inside: sentinel},
		{name: "hardlink through symlink", layers: [][]byte{tarBytes(t, symlink("root", "/"), file("etc/passwd", "pwned"), hardlink("h", "root/etc/passwd"))}, inside: "h"},
		{name: "symlink loop", layers: [][]byte{tarBytes(t, symlink("l1", "l2"), symlink("l2", "l1"), file("l1/x", "pwned"))}, reject: false, inside: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			img, err := s.Put(context.Background(), layeredImage(t, tc.layers...), "hostile:v1")
			if readFile(t, sentinel) != "untouched" {
				t.Fatal("the layer wrote outside the rootfs")
			}
			if tc.reject {
				if !errors.Is(err, ErrUnsafeLayer) {
					t.Fatalf("err = %v, want ErrUnsafeLayer", err)
				}
				if left, _ := os.ReadDir(filepath.Join(s.dir, "rootfs")); len(left) != 0 {
					t.Fatalf("a rejected image left a rootfs: %v", left)
				}
				if left, _ := os.ReadDir(s.tmpDir()); len(left) != 0 {
					t.Fatalf("a rejected image left temp files: %v", left)
				}
				if _, err := s.Get(context.Background(), "hostile:v1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("rejected image is in the index: %v", err)
				}
				return
			}
			if tc.inside == "" {
				if err == nil {
					t.Fatal("symlink loop accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(img.RootFS, tc.inside)); got != "pwned" {
				t.Fatalf("contained file = %q", got)
			}
		})
	}
}

func TestCleanEntryName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"./a/b": "a/b", "/abs/x": "abs/x", "a//b/": "a/b", "./": ".", "": ".", "a/./b": "a/b",
	} {
		got, err := cleanEntryName(in)
		if err != nil || got != want {
			t.Errorf("cleanEntryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"..", "../x", "a/../../b", "a/..", "x\x00y"} {
		if _, err := cleanEntryName(bad); !errors.Is(err, ErrUnsafeLayer) {
			t.Errorf("cleanEntryName(%q) err = %v, want ErrUnsafeLayer", bad, err)
		}
	}
}

// TestInterruptedUnpack fails an unpack half way (the second layer is bad
// after the first was extracted) and checks that no rootfs appears, and that
// a store reopened after a crash cleans its temp dir.
func TestInterruptedUnpack(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	good := tarBytes(t, file("usr/bin/tool", strings.Repeat("x", 1<<16)), file("etc/os-release", "ID=test"))
	bad := tarBytes(t, file("ok", "ok"), file("../escape", "no"))
	if _, err := s.Put(context.Background(), layeredImage(t, good, bad), "half:v1"); !errors.Is(err, ErrUnsafeLayer) {
		t.Fatalf("err = %v, want ErrUnsafeLayer", err)
	}
	if left, _ := os.ReadDir(filepath.Join(s.dir, "rootfs")); len(left) != 0 {
		t.Fatalf("failed unpack left a rootfs: %v", left)
	}
	if left, _ := os.ReadDir(s.tmpDir()); len(left) != 0 {
		t.Fatalf("failed unpack left temp files: %v", left)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, helloImage(t), "hello:v1"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v, want context.Canceled", err)
	}
	// A crash mid-unpack leaves a temp dir; the next start removes it.
	crash := filepath.Join(s.tmpDir(), "unpack-deadbeef-1")
	write(t, filepath.Join(crash, "half", "file"), "partial")
	if _, err := NewStore(s.dir, nil); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, crash)
}

func TestCorruptLayerRejected(t *testing.T) {
	t.Parallel()
	// An OCI archive whose layer blob does not match its digest.
	built := helloImage(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.tar")
	if err := WriteOCIArchive(built, "hello:v1", archive); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the middle of the archive: inside the largest blob.
	b[len(b)/2] ^= 0xff
	corrupt := filepath.Join(dir, "corrupt.tar")
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t)
	_, err = s.Import(context.Background(), corrupt, "")
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err = %v, want a corruption error", err)
	}
}
