// Package dashboard serves Hangar's web dashboard: server-rendered pages
// of the apps, their machines, releases, secrets (names and digests),
// volumes, certificates, addresses and logs, and forms for the actions the
// API offers. It owns no state but its sessions: every page gets its data,
// and every action is done, by calling the /v1 API in-process with the
// signed-in user's token, so what a user may see and do is exactly what
// the API lets that token see and do. It imports only types and the
// standard library.
//
// The pages work without JavaScript; a small script (static/app.js) adds
// confirmations, the apps list's live filter and the live log tail.
package dashboard

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options are the dashboard's dependencies.
type Options struct {
	// API is the daemon's /v1 handler; the dashboard calls it in-process
	// with the session's token (required).
	API http.Handler
	// SessionTTL is how long a session lasts after login (default 12h);
	// SessionIdle ends it sooner when unused (default 1h).
	SessionTTL  time.Duration
	SessionIdle time.Duration
	Log         *slog.Logger
	// Now is the clock (default time.Now), for session expiry in tests.
	Now func() time.Time
}

// Dashboard is the web dashboard. Its fields are set by New.
type Dashboard struct {
	api      http.Handler
	log      *slog.Logger
	sessions *sessions
	pages    map[string]*pageTemplate
	static   fs.FS
}

// New returns the dashboard over o's API.
func New(o Options) *Dashboard {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = time.Hour
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		panic(err) // the embed has the directory: a build error if not
	}
	return &Dashboard{api: o.API, log: o.Log, static: static, pages: parsePages(),
		sessions: newSessions(o.SessionTTL, o.SessionIdle, o.Now)}
}

// access is who may reach a dashboard route.
type access int

const (
	// public: everyone (the login page and the static assets).
	public access = iota
	// signedIn: a live session; POSTs also need the session's CSRF token.
	signedIn
)

// route is one dashboard endpoint.
type route struct {
	pattern string
	access  access
	handle  func(w http.ResponseWriter, r *http.Request, s *session) error
}

// routes is every endpoint the dashboard serves: the one table (its
// authorization test walks it).
func (d *Dashboard) routes() []route {
	return []route{
		{"GET /static/{file}", public, d.serveStatic},
		{"GET /login", public, d.loginPage},
		{"POST /login", public, d.login},
		{"POST /logout", signedIn, d.logout},

		{"GET /{$}", signedIn, d.appsPage},
		{"GET /apps/{app}", signedIn, d.appPage},
		{"GET /apps/{app}/machines/{id}", signedIn, d.machinePage},
		{"GET /apps/{app}/releases/diff", signedIn, d.diffPage},
		{"GET /apps/{app}/logs", signedIn, d.logsPage},
		{"GET /apps/{app}/logs/stream", signedIn, d.logStream},

		{"POST /apps/{app}/machines/{id}/{action}", signedIn, d.machineAction},
		{"POST /apps/{app}/scale", signedIn, d.scale},
		{"POST /apps/{app}/releases/{version}/rollback", signedIn, d.rollback},
		{"POST /apps/{app}/secrets", signedIn, d.setSecret},
		{"POST /apps/{app}/secrets/{name}/unset", signedIn, d.unsetSecret},
		{"POST /apps/{app}/secrets/deploy", signedIn, d.deploySecrets},
		{"POST /apps/{app}/volumes/{volume}/snapshots", signedIn, d.snapshotVolume},
		{"POST /apps/{app}/delete", signedIn, d.deleteApp},
	}
}

// Handler serves the dashboard's routes; any other path is a 404 page.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range d.routes() {
		mux.HandleFunc(rt.pattern, d.serve(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		d.renderError(w, r, nil, &apiError{Status: http.StatusNotFound, Message: "no page at " + r.URL.Path})
	})
	return mux
}

// serve runs one route: the session check (and CSRF check of a POST),
// then the handler; its error becomes an error page.
func (d *Dashboard) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		if r.Method == http.MethodPost && !sameOrigin(r) {
			d.renderError(w, r, nil, &apiError{Status: http.StatusForbidden, Message: "a form posted from another site (Origin " + r.Header.Get("Origin") + ") was refused",
				Hint: "use the dashboard's own pages"})
			return
		}
		var s *session
		if rt.access == signedIn {
			s = d.sessions.get(r)
			if s == nil {
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/login", http.StatusSeeOther)
					return
				}
				d.renderError(w, r, nil, &apiError{Status: http.StatusUnauthorized, Message: "not signed in (or the session expired)", Hint: "sign in again at /login"})
				return
			}
			if r.Method == http.MethodPost && !s.checkCSRF(r) {
				d.renderError(w, r, s, &apiError{Status: http.StatusForbidden, Message: "the form's CSRF token is missing or wrong", Hint: "reload the page and submit the form again"})
				return
			}
		}
		if err := rt.handle(w, r, s); err != nil {
			d.renderError(w, r, s, err)
		}
	}
}

// sameOrigin reports whether a POST came from the dashboard's own pages
// as far as the browser says (Origin, when sent, names this host): a
// second line behind the CSRF token and the SameSite cookie.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not sent (older browsers, or not a browser): the CSRF token decides
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// securityHeaders are on every answer: no framing, no inline script, no
// sniffing, no referrer leaving the dashboard, no caching of pages.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (d *Dashboard) serveStatic(w http.ResponseWriter, r *http.Request, _ *session) error {
	name := r.PathValue("file")
	if name == "" || !fs.ValidPath(name) {
		return &apiError{Status: http.StatusNotFound, Message: "no asset " + name}
	}
	if _, err := fs.Stat(d.static, name); err != nil {
		return &apiError{Status: http.StatusNotFound, Message: "no asset " + name}
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeFileFS(w, r, d.static, name)
	return nil
}
