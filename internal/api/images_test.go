package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"golang.org/x/sys/unix"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/supervisor"
)

// testArchive writes an OCI archive of a random image with one layer of
// about size bytes.
func testArchive(t *testing.T, size int64) string {
	t.Helper()
	img, err := random.Image(size, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := image.WriteOCIArchive(img, "upload:test", path); err != nil {
		t.Fatal(err)
	}
	return path
}

func upload(t *testing.T, h http.Handler, token, ref, archive string) (int, string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req := httptest.NewRequest("POST", "/v1/images?ref="+ref, f)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestImagesAreAppScoped: an app token writes and lists only its app's
// refs; org tokens all.
func TestImagesAreAppScoped(t *testing.T) {
	h, toks, _ := matrixServer(t)
	archive := testArchive(t, 4<<10)
	for _, ref := range []string{"a:v1", "b:v1"} {
		if code, body := upload(t, h, toks["admin"], ref, archive); code != http.StatusOK {
			t.Fatalf("admin uploads %s: %d %s", ref, code, body)
		}
	}
	if code, body := upload(t, h, toks["app a"], "a:v2", archive); code != http.StatusOK {
		t.Fatalf("app a uploads a:v2: %d %s", code, body)
	}
	for _, ref := range []string{"b:v1", "b:v2", "", "localhost:5000/a:v1"} {
		if code, body := upload(t, h, toks["app a"], ref, archive); code != http.StatusForbidden {
			t.Errorf("app a uploads %q: %d %s, want 403", ref, code, body)
		}
	}
	list := func(token string) map[string]bool {
		code, body := call(t, h, token, "GET", "/v1/images", "")
		var imgs []image.Image
		if code != http.StatusOK || json.Unmarshal([]byte(body), &imgs) != nil {
			t.Fatalf("list: %d %s", code, body)
		}
		refs := map[string]bool{}
		for _, img := range imgs {
			refs[img.Ref] = true
		}
		return refs
	}
	if got := list(toks["app a"]); len(got) != 2 || !got["a:v1"] || !got["a:v2"] {
		t.Errorf("app a lists %v, want a:v1 and a:v2", got)
	}
	if got := list(toks["org"]); len(got) != 3 || !got["b:v1"] {
		t.Errorf("org token lists %v, want all three", got)
	}
}

// TestImageUploadOnFullDisk: an upload that fills the disk answers 507
// saying so, not 400.
func TestImageUploadOnFullDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s, h, tok := testServer(t)
	images, err := image.NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := s.options()
	o.Images = images
	if o.Sup == nil {
		o.Sup = supervisor.New(supervisor.Options{Store: s.store})
	}
	h = New(o).Handler()
	code, body := upload(t, h, tok, "web:v1", testArchive(t, 4<<20))
	if code != http.StatusInsufficientStorage || !strings.Contains(body, "disk") || !strings.Contains(body, "full") {
		t.Fatalf("upload on a full disk: %d %s, want 507 saying the disk is full", code, body)
	}
}
