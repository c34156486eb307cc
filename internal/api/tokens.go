package api

// API tokens (a Hangar extension; Fly manages tokens through its GraphQL
// API and flyctl): create, list and revoke. Only org tokens may manage
// tokens.

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/auth"
)

func init() {
	registerRoutes(func(s *Server, h HandleFunc) {
		h("GET /v1/tokens", s.listTokens)
		h("POST /v1/tokens", s.createToken)
		h("DELETE /v1/tokens/{id}", s.revokeToken)
	})
}

// CreateTokenRequest is the body of POST /v1/tokens. Expiry is a Go
// duration ("720h"); none means the token does not expire.
type CreateTokenRequest struct {
	Name   string `json:"name,omitempty"`
	App    string `json:"app,omitempty"`
	Expiry string `json:"expiry,omitempty"`
}

// TokenInfo is a token as the API shows it: never its secret or hash.
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scope     string     `json:"scope"`
	Org       string     `json:"org"`
	App       string     `json:"app,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
	Expired   bool       `json:"expired"`
}

// CreateTokenResponse carries the token's secret, shown this once.
type CreateTokenResponse struct {
	TokenInfo
	Token string `json:"token"`
}

func tokenInfo(t *auth.Token) TokenInfo {
	return TokenInfo{ID: t.ID, Name: t.Name, Scope: t.Scope, Org: t.Org, App: t.App, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, Expired: t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt)}
}

func requireOrgToken(r *http.Request) error {
	if t := TokenFrom(r); t == nil || t.Scope != auth.ScopeOrg {
		id := ""
		if t != nil {
			id = t.ID
		}
		return fmt.Errorf("token %s is scoped to one app; managing tokens needs an org token: %w", id, errForbidden)
	}
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	if err := requireOrgToken(r); err != nil {
		return err
	}
	ts, err := auth.List(r.Context(), s.Store)
	if err != nil {
		return err
	}
	out := make([]TokenInfo, 0, len(ts))
	for i := range ts {
		out = append(out, tokenInfo(&ts[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	if err := requireOrgToken(r); err != nil {
		return err
	}
	var req CreateTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t := auth.Token{Name: req.Name, Scope: auth.ScopeOrg, Org: s.Org}
	if req.App != "" {
		if _, err := s.getAppRecord(r.Context(), req.App); err != nil {
			return err
		}
		t.Scope, t.App = auth.ScopeApp, req.App
	}
	if req.Expiry != "" {
		d, err := time.ParseDuration(req.Expiry)
		if err != nil || d <= 0 {
			return badRequest("expiry %q: a positive duration like \"720h\"", req.Expiry)
		}
		at := time.Now().Add(d).UTC()
		t.ExpiresAt = &at
	}
	if err := t.Validate(); err != nil {
		return err
	}
	plain, tok, err := auth.Create(r.Context(), s.Store, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, CreateTokenResponse{TokenInfo: tokenInfo(tok), Token: plain})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := requireOrgToken(r); err != nil {
		return err
	}
	t, err := auth.Revoke(r.Context(), s.Store, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenInfo(t))
	return nil
}
