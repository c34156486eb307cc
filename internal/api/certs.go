package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/certs"
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
// Info is certs.Info: hostname, app, source (acme|self-signed),
// client_status (Ready | Awaiting certificates | Failed), configured,
// certificate_authority, dns_names, not_before, expires_at, serial, error,
// created_at, updated_at.
func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/apps/{app}/certificates", s.listCerts)
		h("POST /v1/apps/{app}/certificates", s.addCert)
		h("GET /v1/apps/{app}/certificates/{hostname}", s.showCert)
		h("POST /v1/apps/{app}/certificates/{hostname}/check", s.checkCert)
		h("DELETE /v1/apps/{app}/certificates/{hostname}", s.removeCert)
	})
	for pattern, d := range map[string]OpDoc{
		"GET /v1/apps/{app}/certificates":                   {ID: "Certificates_list", Summary: "List an app's custom hostnames and their certificates", Resp: CertsList{}},
		"POST /v1/apps/{app}/certificates":                  {ID: "Certificates_create", Summary: "Add a custom hostname; its certificate is issued over ACME in the background", Body: AddCertRequest{}, Status: 201, Resp: certs.Info{}, Errors: []int{400, 404, 409}},
		"GET /v1/apps/{app}/certificates/{hostname}":        {ID: "Certificates_show", Summary: "Show a hostname's certificate", Resp: certs.Info{}, Errors: []int{404}},
		"POST /v1/apps/{app}/certificates/{hostname}/check": {ID: "Certificates_check", Summary: "Check a hostname; retries issuance when it is not ready", Query: []Param{{Name: "wait", Type: "string", Desc: "how long to wait for the attempt (default 30s, at most 5m)"}}, Resp: certs.Info{}, Errors: []int{400, 404}},
		"DELETE /v1/apps/{app}/certificates/{hostname}":     {ID: "Certificates_delete", Summary: "Remove a hostname and its certificate", Resp: map[string]bool{}, Errors: []int{404}},
	} {
		d.Hangar = true
		opDocs[pattern] = d
	}
}

// CertsList is the answer of GET /v1/apps/{app}/certificates.
type CertsList struct {
	Certificates []certs.Info `json:"certificates"`
}

// AddCertRequest is the body of POST /v1/apps/{app}/certificates.
type AddCertRequest struct {
	Hostname string `json:"hostname"`
}

var certManagers sync.Map // *Server → *certs.Manager

// SetCerts gives the API the daemon's certificate manager.
func (s *Server) SetCerts(m *certs.Manager) { certManagers.Store(s, m) }

func (s *Server) certs() (*certs.Manager, error) {
	if m, ok := certManagers.Load(s); ok {
		return m.(*certs.Manager), nil
	}
	return nil, fmt.Errorf("certificates are not configured on this daemon: %w", errNotFound)
}

// certErr maps the certs package's categories to the API's.
func certErr(err error) error {
	switch {
	case errors.Is(err, certs.ErrInvalid):
		return fmt.Errorf("%w: %w", err, errBadRequest)
	case errors.Is(err, certs.ErrNotFound):
		return fmt.Errorf("%w: %w", err, errNotFound)
	case errors.Is(err, certs.ErrConflict):
		return fmt.Errorf("%w: %w", err, errConflict)
	}
	return err
}

func (s *Server) listCerts(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certs()
	if err != nil {
		return err
	}
	list := m.List(r.PathValue("app"))
	if list == nil {
		list = []certs.Info{}
	}
	writeJSON(w, http.StatusOK, CertsList{Certificates: list})
	return nil
}

func (s *Server) addCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certs()
	if err != nil {
		return err
	}
	var req AddCertRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Hostname == "" {
		return badRequest("hostname is required")
	}
	app := r.PathValue("app")
	if _, err := s.getAppRecord(r.Context(), app); err != nil {
		return err
	}
	in, err := m.Add(app, req.Hostname)
	if err != nil {
		return certErr(err)
	}
	writeJSON(w, http.StatusCreated, in)
	return nil
}

func (s *Server) showCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certs()
	if err != nil {
		return err
	}
	in, err := m.Get(r.PathValue("app"), r.PathValue("hostname"))
	if err != nil {
		return certErr(err)
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *Server) checkCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certs()
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
		return certErr(err)
	}
	writeJSON(w, http.StatusOK, in)
	return nil
}

func (s *Server) removeCert(w http.ResponseWriter, r *http.Request) error {
	m, err := s.certs()
	if err != nil {
		return err
	}
	if err := m.Remove(r.PathValue("app"), r.PathValue("hostname")); err != nil {
		return certErr(err)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
	return nil
}
