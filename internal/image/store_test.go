package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/hangar-dev/hangar/internal/types"
)

// checkHello asserts that img's rootfs holds the hello program built by
// helloImage and that it runs.
func checkHello(t *testing.T, img *types.Image) {
	t.Helper()
	if !filepath.IsAbs(img.RootFS) {
		t.Fatalf("RootFS %q is not absolute", img.RootFS)
	}
	out, err := exec.Command(filepath.Join(img.RootFS, "app"), "x", "y").CombinedOutput()
	if err != nil {
		t.Fatalf("run /app: %v: %s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), helloGreeting+" v1 [x,y]"; got != want {
		t.Fatalf("/app printed %q, want %q", got, want)
	}
	for _, f := range []string{"etc/passwd", "etc/group"} {
		b, err := os.ReadFile(filepath.Join(img.RootFS, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "nobody:x:65534") || !strings.HasPrefix(string(b), "root:x:0") {
			t.Errorf("%s = %q, want root and nobody", f, b)
		}
	}
	fi, err := os.Stat(filepath.Join(img.RootFS, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("/tmp mode = %v, want 1777", fi.Mode())
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/app"}) || !slices.Equal(img.Config.Cmd, []string{"a", "b"}) {
		t.Errorf("entrypoint/cmd = %v %v", img.Config.Entrypoint, img.Config.Cmd)
	}
	if !slices.Contains(img.Config.Env, "GREETING=hi") || !strings.HasPrefix(img.Config.Env[0], "PATH=") {
		t.Errorf("env = %v", img.Config.Env)
	}
	if img.Config.Labels["app"] != "hello" || img.Config.Labels["org.opencontainers.image.title"] != "hello" {
		t.Errorf("labels = %v", img.Config.Labels)
	}
	if !slices.Equal(img.Config.ExposedPorts, []int{8080}) {
		t.Errorf("exposed ports = %v", img.Config.ExposedPorts)
	}
	if img.Size < 100_000 {
		t.Errorf("size = %d, implausibly small", img.Size)
	}
	if !strings.HasPrefix(img.Digest, "sha256:") || len(img.Digest) != 71 {
		t.Errorf("digest = %q", img.Digest)
	}
}

func TestBuildGoPutGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	built := helloImage(t)
	s := newTestStore(t)
	img, err := s.Put(ctx, built, "hello:deployment-01")
	if err != nil {
		t.Fatal(err)
	}
	checkHello(t, img)
	d, _ := built.Digest()
	if img.Digest != d.String() || img.Ref != "hello:deployment-01" {
		t.Fatalf("got ref %q digest %q, want hello:deployment-01 %s", img.Ref, img.Digest, d)
	}
	for _, q := range []string{"hello:deployment-01", img.Digest, strings.TrimPrefix(img.Digest, "sha256:")[:16], "sha256:" + strings.TrimPrefix(img.Digest, "sha256:")[:12]} {
		got, err := s.Get(ctx, q)
		if err != nil {
			t.Fatalf("Get(%q): %v", q, err)
		}
		if got.Digest != img.Digest || got.RootFS != img.RootFS {
			t.Fatalf("Get(%q) = %+v, want %+v", q, got, img)
		}
	}
	stored, err := s.OpenImage(ctx, "hello:deployment-01")
	if err != nil {
		t.Fatal(err)
	}
	if sd, err := stored.Digest(); err != nil || sd != d {
		t.Fatalf("OpenImage digest = %s, %v; want %s", sd, err, d)
	}
	if layers, err := stored.Layers(); err != nil || len(layers) != 1 {
		t.Fatalf("OpenImage layers = %d, %v", len(layers), err)
	}
	if _, err := s.Get(ctx, "hello:other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) err = %v, want ErrNotFound", err)
	}

	// The index survives a restart.
	s2, err := NewStore(s.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(ctx, "hello:deployment-01")
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != img.Size || got.Digest != img.Digest || !got.Created.Equal(img.Created) {
		t.Fatalf("after reopen got %+v, want %+v", got, img)
	}
}

func TestBuildGoReproducible(t *testing.T) {
	t.Parallel()
	a := helloImage(t)
	b, err := BuildGo(context.Background(), helloSource(t, helloGreeting), GoBuildOptions{
		Name: "hello", LDFlags: "-X main.version=v1", Env: []string{"GREETING=hi"},
		Labels: map[string]string{"app": "hello"}, Cmd: []string{"a", "b"}, ExposedPorts: []int{8080},
	})
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds of the same source differ: %s vs %s", da, db)
	}
}

func TestBuildGoErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lib := t.TempDir()
	write(t, filepath.Join(lib, "go.mod"), "module example.com/lib\n\ngo 1.21\n")
	write(t, filepath.Join(lib, "lib.go"), "package lib\n\nfunc X() {}\n")
	if _, err := BuildGo(ctx, lib, GoBuildOptions{}); err == nil || !strings.Contains(err.Error(), "not a main package") {
		t.Fatalf("library: err = %v, want 'not a main package'", err)
	}
	broken := helloSource(t, "x")
	write(t, filepath.Join(broken, "bad.go"), "package main\n\nfunc broken() { undefinedThing() }\n")
	if _, err := BuildGo(ctx, broken, GoBuildOptions{}); err == nil || !strings.Contains(err.Error(), "undefinedThing") {
		t.Fatalf("broken: err = %v, want the compiler error", err)
	}
	if _, err := BuildGo(ctx, filepath.Join(lib, "nope"), GoBuildOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing dir: err = %v", err)
	}
}

// TestImportFormats writes the built image as an OCI layout, an OCI archive
// and a docker save tarball and imports each.
func TestImportFormats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	built := helloImage(t)
	want, _ := built.Digest()
	dir := t.TempDir()

	layoutDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(built, layout.WithAnnotations(map[string]string{annotationRefName: "hello:layout"})); err != nil {
		t.Fatal(err)
	}
	ociArchive := filepath.Join(dir, "hello.oci.tar")
	if err := WriteOCIArchive(built, "hello:archive", ociArchive); err != nil {
		t.Fatal(err)
	}
	dockerTar := filepath.Join(dir, "hello.docker.tar")
	tag, err := name.NewTag("hello:docker")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(dockerTar, tag, built); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path, ref, wantRef string
		kind               ArchiveKind
		sameDigest         bool
	}{
		{layoutDir, "", "hello:layout", KindOCILayout, true},
		{ociArchive, "", "hello:archive", KindOCIArchive, true},
		{ociArchive, "renamed:v2", "renamed:v2", KindOCIArchive, true},
		// docker save stores uncompressed layers and a Docker manifest:
		// the digest differs, the content does not.
		{dockerTar, "", "hello:docker", KindDockerSave, false},
	} {
		t.Run(string(tc.kind)+"/"+tc.wantRef, func(t *testing.T) {
			kind, err := DetectArchive(tc.path)
			if err != nil || kind != tc.kind {
				t.Fatalf("DetectArchive = %q, %v; want %q", kind, err, tc.kind)
			}
			s := newTestStore(t)
			img, err := s.Import(ctx, tc.path, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if img.Ref != tc.wantRef {
				t.Errorf("ref = %q, want %q", img.Ref, tc.wantRef)
			}
			if tc.sameDigest && img.Digest != want.String() {
				t.Errorf("digest = %s, want %s", img.Digest, want)
			}
			checkHello(t, img)
		})
	}

	t.Run("gzip reader", func(t *testing.T) {
		raw, err := os.ReadFile(ociArchive)
		if err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		s := newTestStore(t)
		img, err := s.ImportReader(ctx, &gz, "")
		if err != nil {
			t.Fatal(err)
		}
		if img.Ref != "hello:archive" || img.Digest != want.String() {
			t.Errorf("got %s %s, want hello:archive %s", img.Ref, img.Digest, want)
		}
		checkHello(t, img)
		left, _ := os.ReadDir(s.tmpDir())
		if len(left) != 0 {
			t.Errorf("tmp dir not cleaned: %v", left)
		}
	})
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	dir := t.TempDir()

	// No name in the archive and none given: a hint to pass one.
	noName := filepath.Join(dir, "noname.tar")
	if err := WriteOCIArchive(helloImage(t), "", noName); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, noName, ""); err == nil || !strings.Contains(err.Error(), "pass a ref") {
		t.Fatalf("err = %v, want a hint to pass a ref", err)
	}
	img, err := s.Import(ctx, noName, "named:v1")
	if err != nil || img.Ref != "named:v1" {
		t.Fatalf("Import with ref = %+v, %v", img, err)
	}

	notImage := filepath.Join(dir, "junk.tar")
	write(t, notImage, "this is not a tar file at all, just text that is long enough to fill a block or so........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................")
	if _, err := s.Import(ctx, notImage, "x:y"); err == nil {
		t.Fatal("importing junk succeeded")
	}
	if _, err := s.Import(ctx, filepath.Join(dir, "missing.tar"), "x:y"); err == nil {
		t.Fatal("importing a missing file succeeded")
	}
	if _, err := s.Import(ctx, noName, "UPPER:case"); err == nil || !strings.Contains(err.Error(), "invalid image reference") {
		t.Fatalf("bad ref: err = %v", err)
	}
}

// TestConcurrentImportUnpacksOnce imports the same digest from many
// goroutines under different refs: the rootfs is unpacked exactly once.
func TestConcurrentImportUnpacksOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	archive := filepath.Join(t.TempDir(), "hello.tar")
	if err := WriteOCIArchive(helloImage(t), "hello:v1", archive); err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t)
	const n = 8
	var wg sync.WaitGroup
	imgs := make([]*types.Image, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			imgs[i], errs[i] = s.Import(ctx, archive, "hello:r"+string(rune('a'+i)))
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("import %d: %v", i, errs[i])
		}
		if imgs[i].RootFS != imgs[0].RootFS || imgs[i].Digest != imgs[0].Digest {
			t.Fatalf("import %d got a different image: %+v vs %+v", i, imgs[i], imgs[0])
		}
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Fatalf("unpacked %d times, want 1", got)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("List has %d entries, want %d", len(list), n)
	}
	checkHello(t, imgs[n-1])
}

func TestRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	built := helloImage(t)
	a, err := s.Put(ctx, built, "hello:a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, built, "hello:b"); err != nil {
		t.Fatal(err)
	}
	// Removing one of two refs keeps the image.
	if err := s.Remove(ctx, "hello:a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "hello:a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed ref still found: %v", err)
	}
	if _, err := os.Stat(a.RootFS); err != nil {
		t.Fatalf("rootfs gone while hello:b still names it: %v", err)
	}
	// Removing the last ref deletes the rootfs and the blobs.
	if err := s.Remove(ctx, "hello:b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.RootFS); !os.IsNotExist(err) {
		t.Fatalf("rootfs still there after last ref removed: %v", err)
	}
	blobs, _ := filepath.Glob(filepath.Join(s.dir, "blobs", "sha256", "*"))
	if len(blobs) != 0 {
		t.Fatalf("blobs left: %v", blobs)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("List after remove = %v", list)
	}
	if err := s.Remove(ctx, "hello:b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: err = %v, want ErrNotFound", err)
	}

	// Remove by digest drops every ref.
	b, err := s.Put(ctx, built, "hello:c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, built, "hello:d"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, b.Digest); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("List after remove by digest = %v", list)
	}
	// And it can be stored again.
	c, err := s.Put(ctx, built, "hello:e")
	if err != nil {
		t.Fatal(err)
	}
	checkHello(t, c)
}

var _ v1.Image = (v1.Image)(nil)

// TestConcurrentPutCancelledCaller: a caller that gives up must not fail
// another caller importing the same digest at the same time.
func TestConcurrentPutCancelledCaller(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	built := helloImage(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if i%2 == 0 {
				ctx = cancelled
			}
			_, errs[i] = s.Put(ctx, built, "hello:c"+string(rune('0'+i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 && err != nil {
			t.Errorf("live caller %d failed: %v", i, err)
		}
		if i%2 == 0 && err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller %d: err = %v, want context.Canceled", i, err)
		}
	}
	img, err := s.Get(context.Background(), "hello:c1")
	if err != nil {
		t.Fatal(err)
	}
	checkHello(t, img)
}
