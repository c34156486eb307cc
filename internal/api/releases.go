package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/hangar-dev/hangar/internal/deploy"
)

func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/apps/{app}/releases/{version}", s.getRelease)
		h("POST /v1/apps/{app}/releases/{version}/rollback", s.rollback)
		h("POST /v1/apps/{app}/scale", s.scale)
		h("POST /v1/apps/{app}/restart", s.restartApp)
	})
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
	send := func(l DeployLine) {
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
				send(DeployLine{Event: &e})
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
	rel, err := op(ctx, func(e deploy.Event) { send(DeployLine{Event: &e}) })
	if err != nil {
		send(DeployLine{Error: err.Error(), Status: statusOf(err), Release: rel})
		return
	}
	send(DeployLine{Release: rel})
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return badRequest("version %q: a release number like 3", r.PathValue("version"))
	}
	rel, err := deploy.GetRelease(r.Context(), s.Store, app, v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rel)
	return nil
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 0 {
		return badRequest("version %q: a release number, or 0 for the one before the current", r.PathValue("version"))
	}
	user := ""
	if t := TokenFrom(r); t != nil {
		user = t.Name
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.Deployer.Rollback(ctx, app, v, user, p)
	})
	return nil
}

// ScaleRequest is the body of POST /v1/apps/{app}/scale.
type ScaleRequest struct {
	ProcessGroup string `json:"process_group,omitempty"`
	Count        *int   `json:"count,omitempty"`
	// Region is where count machines run: only this daemon's region, as
	// long as one daemon serves one region.
	Region   string `json:"region,omitempty"`
	VMSize   string `json:"vm_size,omitempty"`
	MemoryMB int    `json:"memory_mb,omitempty"`
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req ScaleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Count == nil && req.VMSize == "" && req.MemoryMB == 0 {
		return badRequest("nothing to scale: set count, vm_size or memory_mb")
	}
	if req.MemoryMB < 0 {
		return badRequest("memory_mb %d: must be positive", req.MemoryMB)
	}
	if req.Region != "" && req.Region != s.Region {
		return badRequest("region %q: this host serves region %q, and placing machines on other hosts is not built yet; scale without --region or with --region %s", req.Region, s.Region, s.Region)
	}
	if req.Region != "" && req.Count == nil {
		return badRequest("region goes with count: `hangar scale count N --region %s`", s.Region)
	}
	user := ""
	if t := TokenFrom(r); t != nil {
		user = t.Name
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.Deployer.Scale(ctx, app, deploy.ScaleRequest{Group: req.ProcessGroup, Count: req.Count, VMSize: req.VMSize, MemoryMB: req.MemoryMB, User: user}, p)
	})
	return nil
}

func (s *Server) restartApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.Deployer.Restart(ctx, app, p)
	})
	return nil
}
