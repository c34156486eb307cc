package api

import (
	"context"
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/types"
)

// Certificate endpoints (flyctl's `certs` commands; Fly serves them over
// GraphQL, Hangar over REST with a shape close to Fly's AppCertificate):
//
//	GET    /v1/apps/{app}/certificates                    {"certificates": [Info...]}
//	POST   /v1/apps/{app}/certificates                    {"hostname": "www.example.com"} → 201 Info (issuance runs in the background)
//	GET    /v1/apps/{app}/certificates/{hostname}         Info
//	POST   /v1/apps/{app}/certificates/{hostname}/check   Info, after another issuance attempt if not ready (waits up to ?wait=, default 30s)
//	DELETE /v1/apps/{app}/certificates/{hostname}         {"deleted": true}
//
// and fly-go's paths for the same: POST …/certificates/acme (as POST
// …/certificates), DELETE …/certificates/{hostname}/acme (as DELETE).
// Importing a certificate (…/custom) is refused with a 400: Hangar issues
// its certificates over ACME.
//
// Info is certs.Info: hostname, app, source (acme|self-signed),
// client_status (Ready | Awaiting certificates | Failed), configured,
// certificate_authority, dns_names, not_before, expires_at, serial, error,
// created_at, updated_at.

func (s *Server) certManager() (*certs.Manager, error) {
	if s.certs == nil {
		return nil, notConfigured("certificates")
	}
	return s.certs, nil
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certManager()
	if err != nil {
		return err
	}
	list := m.List(r.PathValue("app"))
	if list == nil {
		list = []certs.Info{}
	}
	writeJSON(w, http.StatusOK, types.CertsList{Certificates: list})
	return nil
}

func (s *Server) addCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certManager()
	if err != nil {
		return err
	}
	var req types.AddCertRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Hostname == "" {
		return badRequest("hostname is required")
	}
	app := r.PathValue("app")
	if _, err := s.apps.Get(r.Context(), app); err != nil {
		return err
	}
	in, err := m.Add(app, req.Hostname)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, in)
	return nil
}

func (s *Server) showCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certManager()
	if err != nil {
		return err
	}
	in, err := m.Get(r.PathValue("app"), r.PathValue("hostname"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *Server) checkCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certManager()
	if err != nil {
		return err
	}
	wait := 30 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			return badRequest("wait %q: use a duration up to 5m, like 30s", v)
		}
		wait = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	in, err := m.Check(ctx, r.PathValue("app"), r.PathValue("hostname"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *Server) removeCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certManager()
	if err != nil {
		return err
	}
	if err := m.Remove(r.PathValue("app"), r.PathValue("hostname")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}

// customCert answers fly-go's custom certificate calls (import, remove).
func (s *Server) customCert(w http.ResponseWriter, r *http.Request) error {
	return badRequest("custom (imported) certificates are not supported yet: Hangar issues certificates over ACME; add the hostname with POST /v1/apps/%s/certificates/acme", r.PathValue("app"))
}
