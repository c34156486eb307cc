package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
)

// MaxImageBytes bounds an uploaded image archive.
const MaxImageBytes = 4 << 30

// DeployRequest is the body of POST /v1/deploys.
type DeployRequest struct {
	App        string `json:"app"`
	Config     string `json:"config"`      // fly.toml contents
	ConfigFile string `json:"config_file"` // its name, for error messages
	// LocalFiles holds the [[files]] local_path contents (base64 in JSON).
	LocalFiles  map[string][]byte `json:"local_files,omitempty"`
	Image       string            `json:"image"`
	Strategy    string            `json:"strategy,omitempty"`
	WaitTimeout string            `json:"wait_timeout,omitempty"`
}

// DeployLine is one line of the deploy stream: an event, or at the end the
// release or the error.
type DeployLine struct {
	Event   *deploy.Event   `json:"event,omitempty"`
	Release *deploy.Release `json:"release,omitempty"`
	Error   string          `json:"error,omitempty"`
	Status  int             `json:"status,omitempty"`
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	var req DeployRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Config) == "" {
		return badRequest("config is required: send the fly.toml contents")
	}
	var wt time.Duration
	if req.WaitTimeout != "" {
		d, err := time.ParseDuration(req.WaitTimeout)
		if err != nil || d <= 0 {
			return badRequest("wait_timeout %q: use a duration like \"2m\"", req.WaitTimeout)
		}
		wt = d
	}
	tok := r.Context().Value(tokenKey{}).(*auth.Token)
	if req.App != "" && !tok.CanAccessApp(req.App) {
		return fmt.Errorf("token %s may not deploy app %s: %w", tok.ID, req.App, auth.ErrUnauthorized)
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.Deployer.Deploy(ctx, deploy.Request{
			App: req.App, Config: []byte(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles, Image: req.Image,
			Strategy: req.Strategy, WaitTimeout: wt, User: tok.Name,
		}, p)
	})
	return nil
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	rels, err := deploy.Releases(r.Context(), s.Store, app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rels)
	return nil
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.Images.List(r.Context())
	if err != nil {
		return err
	}
	if imgs == nil {
		imgs = []*image.Image{}
	}
	writeJSON(w, http.StatusOK, imgs)
	return nil
}

func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) error {
	ref := r.URL.Query().Get("ref")
	body := http.MaxBytesReader(w, r.Body, MaxImageBytes)
	img, err := s.Images.ImportReader(r.Context(), body, ref)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("image archive over %d bytes: %w", int64(MaxImageBytes), errTooLarge)
		}
		return badRequest("import image: %v", err)
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
	img, err := s.Images.Pull(r.Context(), req.Ref, opts...)
	if err != nil {
		return badRequest("pull %s: %v", req.Ref, err)
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}
