package api

// Releases: list, show, roll back, scale and restart; the operations
// that make a release stream their progress (streamRelease, deploys.go).

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/types"
)

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return badRequest("version %q: a release number like 3", r.PathValue("version"))
	}
	rel, err := deploy.GetRelease(r.Context(), s.store, app, v)
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
	user := userOf(r)
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.deployer.Rollback(ctx, app, v, user, p)
	})
	return nil
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	var req types.ScaleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Count == nil && req.VMSize == "" && req.MemoryMB == 0 {
		return badRequest("nothing to scale: set count, vm_size or memory_mb")
	}
	if req.MemoryMB < 0 {
		return badRequest("memory_mb %d: must be positive", req.MemoryMB)
	}
	if req.Region != "" && req.Count == nil {
		return badRequest("region goes with count: `hangar scale count N --region %s`", s.region)
	}
	regions := splitRegions(req.Region)
	for _, region := range regions {
		if !regionRE.MatchString(region) {
			return badRequest("region %q: use region codes like %q, comma-separated", region, s.region)
		}
	}
	if len(regions) > 0 {
		if many, err := s.manyHosts(r.Context()); err != nil {
			return err
		} else if many {
			// N machines in each region, on the regions' hosts.
			streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
				return s.deployer.ScaleRegions(ctx, app, req.ProcessGroup, *req.Count, regions, &apiMachines{s: s, r: r}, p)
			})
			return nil
		}
		if len(regions) > 1 || regions[0] != s.region {
			return badRequest("region %q: this installation has one host, in region %q: scale without --region or with --region %s, or add hosts in other regions (docs/cluster.md)", req.Region, s.region, s.region)
		}
	}
	user := userOf(r)
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.deployer.Scale(ctx, app, deploy.ScaleRequest{Group: req.ProcessGroup, Count: req.Count, VMSize: req.VMSize, MemoryMB: req.MemoryMB, User: user}, p)
	})
	return nil
}

func (s *Server) restartApp(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	streamRelease(w, r, r.URL.Query().Get("detach") == "true", func(ctx context.Context, p func(deploy.Event)) (*deploy.Release, error) {
		return s.deployer.Restart(ctx, app, userOf(r), p)
	})
	return nil
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) error {
	app, err := s.requireApp(r)
	if err != nil {
		return err
	}
	rels, err := deploy.Releases(r.Context(), s.store, app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rels)
	return nil
}

// splitRegions reads a comma-separated list of regions, without repeats.
func splitRegions(list string) []string {
	var out []string
	for _, r := range strings.Split(list, ",") {
		if r = strings.TrimSpace(r); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}
