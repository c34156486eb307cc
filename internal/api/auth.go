package api

// Who may call what: authenticate (every route: a valid token, and the
// app of the path) and authorize (each route's access rule, routes.go).

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/types"
)

type tokenKey struct{}

// TokenFrom returns the authenticated token of a request.
func TokenFrom(r *http.Request) *auth.Token {
	t, _ := r.Context().Value(tokenKey{}).(*auth.Token)
	return t
}

// authenticate answers 401 to a request without a valid token, and 403 to
// one whose token may not act on the app its path names (checked on the
// raw path too, before routing decodes it) or is of another org.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		authz := r.Header.Get("Authorization")
		plain, ok := strings.CutPrefix(authz, "Bearer ")
		if !ok {
			plain, ok = strings.CutPrefix(authz, "FlyV1 ")
		}
		if !ok || plain == "" {
			writeJSON(w, http.StatusUnauthorized, types.ErrorResponse{Error: "missing API token: send `Authorization: Bearer <token>`; the admin token is in <data-dir>/admin-token"})
			return
		}
		tok, err := auth.Verify(r.Context(), s.store, plain)
		if err != nil && !errors.Is(err, auth.ErrUnauthorized) {
			// The token could not be checked (the store is unavailable,
			// say): not the caller's fault, and not a 401 that would send
			// them looking at their token.
			s.writeError(w, r, err)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusUnauthorized, types.ErrorResponse{Error: err.Error()})
			return
		}
		if app := appFromPath(r.URL.Path); app != "" && !tok.CanAccessApp(app) {
			writeJSON(w, http.StatusForbidden, types.ErrorResponse{Error: fmt.Sprintf("token %s may only act on app %s, not %s", tok.ID, tok.App, app)})
			return
		}
		if tok.Scope == auth.ScopeOrg && tok.Org != "" && s.org != "" && tok.Org != s.org {
			writeJSON(w, http.StatusForbidden, types.ErrorResponse{Error: fmt.Sprintf("token %s is for org %s; this daemon serves org %s", tok.ID, tok.Org, s.org)})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

func appFromPath(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/apps/")
	if !ok {
		return ""
	}
	app, _, _ := strings.Cut(rest, "/")
	return app
}

// userOf names the caller in records (releases): the token's name.
func userOf(r *http.Request) string {
	if t := TokenFrom(r); t != nil {
		return t.Name
	}
	return ""
}

// access is a route's rule of who may call it, beyond a valid token.
type access int

const (
	// anyToken: every valid token; the handler shows an app token only
	// its app's objects, and checks any app the request names in its body
	// or query (canAct).
	anyToken access = iota
	// appPath: a token that may act on the app of the path's {app}.
	appPath
	// orgOnly: org tokens only (managing apps and tokens).
	orgOnly
)

// authorize applies rule a to tok for a request whose path names app.
func authorize(a access, tok *auth.Token, app string) error {
	if tok == nil {
		return fmt.Errorf("no token: %w", types.ErrUnauthorized)
	}
	switch a {
	case appPath:
		if !tok.CanAccessApp(app) {
			return fmt.Errorf("token %s may only act on app %s, not %s: %w", tok.ID, tok.App, app, errForbidden)
		}
	case orgOnly:
		if tok.Scope != auth.ScopeOrg {
			return fmt.Errorf("token %s is scoped to app %s; this needs an org token (`hangar tokens create` without --app): %w", tok.ID, tok.App, errForbidden)
		}
	}
	return nil
}

// canAct checks that the request's token may act on app, an app the
// request names in its body or query (a deploy's fly.toml, an image ref).
func canAct(r *http.Request, app, what string) error {
	tok := TokenFrom(r)
	if tok == nil {
		return fmt.Errorf("no token: %w", types.ErrUnauthorized)
	}
	if !tok.CanAccessApp(app) {
		return fmt.Errorf("token %s may only act on app %s; it may not %s app %s: %w", tok.ID, tok.App, what, app, errForbidden)
	}
	return nil
}
