package api

// Deploys: POST /v1/deploys takes a fly.toml and streams the deploy's
// progress back (streamRelease, shared by every operation that makes a
// release).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/types"
)

// deployTarget is the app a deploy request acts on: the body's app, else
// the one its fly.toml names. The token must be allowed to act on it, and
// an app token may deploy only to its app as it exists: it never creates
// an app.
func (s *Server) deployTarget(r *http.Request, req *types.DeployRequest) (string, error) {
	tok := TokenFrom(r)
	// A config that cannot deploy is refused here, with a 400, not as an
	// error line at the end of a 200 stream.
	_, app, _, err := deploy.Check(deploy.Request{App: req.App, Config: []byte(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles})
	if err != nil {
		return "", err
	}
	if err := canAct(r, app, "deploy"); err != nil {
		return "", err
	}
	if tok.Scope != auth.ScopeOrg {
		if err := s.mayUseImage(r, app, req.Image); err != nil {
			return "", err
		}
		ok, err := s.apps.Exists(r.Context(), app)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("app %s does not exist, and token %s is scoped to one app, so it may not create apps; create the app with an org token (`hangar apps create %s`): %w", app, tok.ID, app, errForbidden)
		}
	}
	return app, nil
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) error {
	var req types.DeployRequest
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
	app, err := s.deployTarget(r, &req)
	if err != nil {
		return err
	}
	user := userOf(r)
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		// The app authorized, whatever the fly.toml says.
		return s.deployer.Deploy(ctx, deploy.Request{
			App: app, Config: []byte(req.Config), ConfigFile: req.ConfigFile, LocalFiles: req.LocalFiles, Image: req.Image,
			Strategy: req.Strategy, WaitTimeout: wt, User: user, NoCreateApp: TokenFrom(r).Scope != auth.ScopeOrg,
		}, p)
	})
	return nil
}

// streamRelease runs a release-producing operation and streams its progress
// as NDJSON DeployLines, ending with the release or the error. With
// detach, it answers after the first event and the operation goes on.
func streamRelease(w http.ResponseWriter, r *http.Request, detach bool, op func(ctx context.Context, progress func(deploy.Event)) (*deploy.Release, error)) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex // guards enc, open
	open := true
	enc := json.NewEncoder(w)
	send := func(l types.DeployLine) {
		mu.Lock()
		defer mu.Unlock()
		if !open {
			return
		}
		_ = enc.Encode(l)
		if flusher != nil {
			flusher.Flush()
		}
	}
	ctx := r.Context()
	if detach {
		ctx = context.WithoutCancel(ctx)
		started := make(chan struct{})
		var once sync.Once
		go func() {
			_, _ = op(ctx, func(e deploy.Event) {
				ev := types.DeployEvent(e)
				send(types.DeployLine{Event: &ev})
				once.Do(func() { close(started) })
			})
			once.Do(func() { close(started) })
		}()
		<-started
		mu.Lock()
		open = false
		mu.Unlock()
		return
	}
	rel, err := op(ctx, func(e deploy.Event) {
		ev := types.DeployEvent(e)
		send(types.DeployLine{Event: &ev})
	})
	if err != nil {
		send(types.DeployLine{Error: err.Error(), Status: ToHTTP(err), Release: rel})
		return
	}
	send(types.DeployLine{Release: rel})
}
