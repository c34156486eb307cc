package api

// Apps: Fly's Machines API app endpoints over the apps package, and
// Hangar's /v1/info.

import (
	"net/http"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/types"
)

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	info := types.Info{Org: s.org, Region: s.region, Domain: s.domain, HTTPPort: s.httpPort}
	if s.disk != nil {
		d := s.disk()
		info.Disk = &d
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// appObject is the wire form of an app record.
func (s *Server) appObject(r *http.Request, rec *apps.Record) (types.App, error) {
	ms, err := s.sup.List(r.Context(), rec.Name)
	if err != nil {
		return types.App{}, err
	}
	return types.App{ID: rec.ID, Name: rec.Name, Status: "deployed", Network: rec.Network,
		Organization: types.Organization{Name: rec.Org, Slug: rec.Org}, CreatedAt: rec.CreatedAt, MachineCount: len(ms)}, nil
}

// requireApp is the app of the request's path, which must exist.
func (s *Server) requireApp(r *http.Request) (string, error) {
	app := r.PathValue("app")
	_, err := s.apps.Get(r.Context(), app)
	return app, err
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) error {
	recs, err := s.apps.List(r.Context())
	if err != nil {
		return err
	}
	tok := TokenFrom(r)
	out := []types.App{}
	for i := range recs {
		rec := &recs[i]
		if !tok.CanAccessApp(rec.Name) {
			continue
		}
		if org := r.URL.Query().Get("org_slug"); org != "" && org != "personal" && org != rec.Org {
			continue
		}
		a, err := s.appObject(r, rec)
		if err != nil {
			return err
		}
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_apps": len(out), "apps": out})
	return nil
}

func (s *Server) createApp(w http.ResponseWriter, r *http.Request) error {
	var req types.CreateAppRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := s.apps.CheckOrg(req.OrgSlug); err != nil {
		return err
	}
	name, err := req.AppNameOf()
	if err != nil {
		return err
	}
	rec, err := s.apps.Create(r.Context(), name, req.Network)
	if err != nil {
		return err
	}
	a, err := s.appObject(r, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a)
	return nil
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) error {
	rec, err := s.apps.Get(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	a, err := s.appObject(r, rec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// deleteApp deletes the app, its machines and its records
// (deploy.Deployer.DeleteApp); the cleaners subscribed to apps.Deletions
// remove the rest.
func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) error {
	if err := s.destroyElsewhere(r); err != nil {
		return err
	}
	if err := s.deployer.DeleteApp(r.Context(), r.PathValue("app")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
