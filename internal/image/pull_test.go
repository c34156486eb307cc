package image

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestPullFromRegistry pushes the built image to a real registry served on
// loopback and pulls it over plain HTTP.
func TestPullFromRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	built := helloImage(t)
	ref, err := name.ParseReference(host+"/apps/hello:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, built, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}

	s := newTestStore(t)
	img, err := s.Pull(ctx, host+"/apps/hello:v1", WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.Digest()
	if img.Digest != want.String() {
		t.Fatalf("digest = %s, want %s", img.Digest, want)
	}
	if img.Ref != host+"/apps/hello:v1" {
		t.Fatalf("ref = %q", img.Ref)
	}
	checkHello(t, img)
	got, err := s.Get(ctx, host+"/apps/hello:v1")
	if err != nil || got.Digest != img.Digest {
		t.Fatalf("Get after pull = %+v, %v", got, err)
	}

	// Pulling again, by digest, reuses the unpacked rootfs.
	again, err := s.Pull(ctx, host+"/apps/hello@"+want.String(), WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if again.RootFS != img.RootFS || s.unpacks.Load() != 1 {
		t.Fatalf("second pull unpacked again (unpacks=%d)", s.unpacks.Load())
	}

	// A missing tag is a clear error.
	if _, err := s.Pull(ctx, host+"/apps/hello:nope", WithInsecure()); err == nil || !strings.Contains(err.Error(), "apps/hello:nope") {
		t.Fatalf("missing tag: err = %v", err)
	}
	// An unreachable registry is an error naming the ref, and leaves
	// nothing behind.
	if _, err := s.Pull(ctx, "127.0.0.1:1/apps/other:v1", WithInsecure()); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/apps/other:v1") {
		t.Fatalf("unreachable registry: err = %v", err)
	}
	if list, _ := s.List(ctx); len(list) != 2 {
		t.Fatalf("List = %d images, want the 2 refs pulled", len(list))
	}
}
