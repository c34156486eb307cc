package api

// Images (a Hangar extension): list, upload an archive, pull. Images and
// their refs are app-scoped: an app token sees and writes only the refs of
// its app's repository ("<app>:<tag>"); org tokens see and write all.

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/types"
)

// MaxImageBytes bounds an uploaded image archive.
const MaxImageBytes = 4 << 30

// refOfApp reports whether image ref ("app", "app:tag", "app@sha256:...")
// is in app's repository. Refs with a path or a registry are no app's.
func refOfApp(ref, app string) bool {
	ref = strings.TrimSpace(ref)
	if strings.Contains(ref, "/") {
		return false
	}
	repo := ref
	if i := strings.IndexAny(ref, ":@"); i >= 0 {
		repo = ref[:i]
	}
	return repo == app
}

// mayUseImage checks that the request's token may run image ref in app:
// an app token may run its app's images and those pulled from registries,
// never an image uploaded under another app's ref.
func (s *Server) mayUseImage(r *http.Request, app, ref string) error {
	tok := TokenFrom(r)
	if tok == nil || tok.Scope == auth.ScopeOrg || strings.TrimSpace(ref) == "" || s.images == nil {
		return nil
	}
	img, err := s.images.Get(r.Context(), ref)
	if err != nil || img.Ref == "" || strings.Contains(img.Ref, "/") || refOfApp(img.Ref, app) {
		return nil // unknown (the caller says so), by digest, or from a registry
	}
	return fmt.Errorf("image %q: token %s is scoped to app %s and may run only its app's images (%s:<tag>) and registry images: %w", ref, tok.ID, tok.App, tok.App, errForbidden)
}

// imageErr says what went wrong storing an image; a full disk is 507.
func imageErr(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%s: the disk holding the image store is full; free space (remove unused images, volumes or logs) and try again: %w", what, types.ErrNoSpace)
	}
	return badRequest("%s: %v", what, err)
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.images.List(r.Context())
	if err != nil {
		return err
	}
	out := []*image.Image{}
	tok := TokenFrom(r)
	for _, img := range imgs {
		if tok.Scope == auth.ScopeOrg || refOfApp(img.Ref, tok.App) {
			out = append(out, img)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	if tok := TokenFrom(r); tok.Scope != auth.ScopeOrg && !refOfApp(ref, tok.App) {
		return fmt.Errorf("ref %q: token %s is scoped to app %s and may write only its app's images; upload with ?ref=%s:<tag>: %w", ref, tok.ID, tok.App, tok.App, errForbidden)
	}
	body := http.MaxBytesReader(w, r.Body, MaxImageBytes)
	img, err := s.images.ImportReader(r.Context(), body, ref)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("image archive over %d bytes: %w", int64(MaxImageBytes), errTooLarge)
		}
		return imageErr("import image", err)
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Ref      string `json:"ref"`
		Insecure bool   `json:"insecure"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Ref == "" {
		return badRequest("ref is required")
	}
	var opts []image.PullOption
	if req.Insecure {
		opts = append(opts, image.WithInsecure())
	}
	img, err := s.images.Pull(r.Context(), req.Ref, opts...)
	if err != nil {
		return imageErr("pull "+req.Ref, err)
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}
