package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// Images between the hosts of a cluster: a host that is asked to run a
// machine from an image it does not have fetches it from a host that has
// it, as an OCI archive over the cluster's mutually authenticated
// listener (ArchiveHandler serves it, Fetch gets it). The image keeps its
// digest, so a release that names it by digest runs the same bytes on
// every host.

// ArchivePath is where ArchiveHandler is served on the cluster listener.
const ArchivePath = "/hangar/v1/images/archive"

// Headers of an archive answer: the image's digest and its name.
const (
	HeaderDigest = "Hangar-Image-Digest"
	HeaderRef    = "Hangar-Image-Ref"
)

// ArchiveHandler answers GET ArchivePath?ref=REF_OR_DIGEST with the
// image as an OCI archive (404 when the store has none).
func (s *Store) ArchiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("ref")
		im, err := s.Get(r.Context(), q)
		if errors.Is(err, ErrNotFound) {
			http.Error(w, fmt.Sprintf("no image %q on this host", q), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		img, err := s.OpenImage(r.Context(), im.Digest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := os.MkdirAll(s.tmpDir(), 0o700); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set(HeaderDigest, im.Digest)
		w.Header().Set(HeaderRef, im.Ref)
		// Streamed as it is made: an error after the first bytes cuts the
		// answer short, and the receiver's import fails on the truncated
		// archive (nothing is stored).
		if err := streamOCIArchive(img, im.Ref, s.tmpDir(), w); err != nil {
			s.log.Warn("serve image archive", "image", q, "err", err)
		}
	})
}

// Fetch gets the image named by refOrDigest from another host's cluster
// listener at base (https://HOST:PORT) with client (the cluster's mutual
// TLS) and stores it under the name it has there. The error wraps
// ErrNotFound when that host has no such image.
func (s *Store) Fetch(ctx context.Context, client *http.Client, base, refOrDigest string) (*types.Image, error) {
	u := strings.TrimSuffix(base, "/") + ArchivePath + "?ref=" + url.QueryEscape(refOrDigest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch image %s from %s: %w", refOrDigest, base, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch image %s from %s: %w", refOrDigest, base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("fetch image %s from %s: %w", refOrDigest, base, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("fetch image %s from %s: %s: %s", refOrDigest, base, resp.Status, strings.TrimSpace(string(b)))
	}
	digest := resp.Header.Get(HeaderDigest)
	im, err := s.ImportReader(ctx, resp.Body, resp.Header.Get(HeaderRef))
	if err != nil {
		return nil, fmt.Errorf("fetch image %s from %s: %w", refOrDigest, base, err)
	}
	if digest != "" && im.Digest != digest {
		return nil, fmt.Errorf("fetch image %s from %s: stored digest %s is not the sender's %s; the archive was changed on the way or by the import", refOrDigest, base, im.Digest, digest)
	}
	return im, nil
}
