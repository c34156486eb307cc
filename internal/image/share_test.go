package image

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// One host serves its images (ArchiveHandler) and another fetches one it
// lacks (Fetch): by name or by digest, with the same digest and name, its
// root filesystem unpacked; an image the server lacks is ErrNotFound.
func TestFetchFromAnotherHost(t *testing.T) {
	src, dst := newTestStore(t), newTestStore(t)
	ctx := context.Background()
	im, err := src.Put(ctx, helloImage(t), "hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+ArchivePath, src.ArchiveHandler())
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()

	got, err := dst.Fetch(ctx, srv.Client(), srv.URL, "hello:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != im.Digest || got.Ref != "hello:v1" {
		t.Fatalf("fetched %s %s, want %s hello:v1", got.Ref, got.Digest, im.Digest)
	}
	local, err := dst.Get(ctx, im.Digest)
	if err != nil {
		t.Fatalf("the fetched image is not in the store by digest: %v", err)
	}
	if _, err := os.Stat(local.RootFS + GoBinaryPath); err != nil {
		t.Fatalf("the fetched image's root filesystem is not unpacked: %v", err)
	}
	// By digest, into a third store.
	third := newTestStore(t)
	if got, err := third.Fetch(ctx, srv.Client(), srv.URL, im.Digest); err != nil || got.Digest != im.Digest {
		t.Fatalf("fetch by digest: %+v, %v", got, err)
	}
	if _, err := dst.Fetch(ctx, srv.Client(), srv.URL, "nope:v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an image the other host lacks: %v, want ErrNotFound", err)
	}
	// A server that is not a Hangar host: a clear error, nothing stored.
	bad := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderDigest, im.Digest)
		w.Write([]byte("not a tar"))
	}))
	defer bad.Close()
	empty := newTestStore(t)
	if _, err := empty.Fetch(ctx, bad.Client(), bad.URL, "hello:v1"); err == nil {
		t.Fatal("a body that is not an archive was accepted")
	}
	if list, _ := empty.List(ctx); len(list) != 0 {
		t.Fatalf("a failed fetch left %d images", len(list))
	}
}
