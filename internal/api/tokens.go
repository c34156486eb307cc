package api

// API tokens (a Hangar extension; Fly manages tokens through its GraphQL
// API and flyctl): create, list and revoke. Only org tokens may manage
// tokens (the routes' access rule).

import (
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/types"
)

func tokenInfo(t *auth.Token) types.TokenInfo {
	return types.TokenInfo{ID: t.ID, Name: t.Name, Scope: t.Scope, Org: t.Org, App: t.App, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, Expired: t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt)}
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	ts, err := auth.List(r.Context(), s.store)
	if err != nil {
		return err
	}
	out := make([]types.TokenInfo, 0, len(ts))
	for i := range ts {
		out = append(out, tokenInfo(&ts[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var req types.CreateTokenRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	t := auth.Token{Name: req.Name, Scope: auth.ScopeOrg, Org: s.org}
	if req.App != "" {
		if _, err := s.apps.Get(r.Context(), req.App); err != nil {
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
	plain, tok, err := auth.Create(r.Context(), s.store, t)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, types.CreateTokenResponse{TokenInfo: tokenInfo(tok), Token: plain})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	t, err := auth.Revoke(r.Context(), s.store, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenInfo(t))
	return nil
}
