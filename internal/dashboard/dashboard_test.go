package dashboard

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// routeAccess is the authorization expectation of every dashboard route.
// It is written out, not derived from the table, so a route added without
// a line here fails TestEveryRouteIsAuthorized.
var routeAccess = map[string]access{
	"GET /static/{file}": public,
	"GET /login":         public,
	"POST /login":        public, // but only with the login form's CSRF cookie and field
	"POST /logout":       signedIn,

	"GET /{$}":                      signedIn,
	"GET /apps/{app}":               signedIn,
	"GET /apps/{app}/machines/{id}": signedIn,
	"GET /apps/{app}/releases/diff": signedIn,
	"GET /apps/{app}/logs":          signedIn,
	"GET /apps/{app}/logs/stream":   signedIn,

	"POST /apps/{app}/machines/{id}/{action}":      signedIn,
	"POST /apps/{app}/scale":                       signedIn,
	"POST /apps/{app}/releases/{version}/rollback": signedIn,
	"POST /apps/{app}/secrets":                     signedIn,
	"POST /apps/{app}/secrets/{name}/unset":        signedIn,
	"POST /apps/{app}/secrets/deploy":              signedIn,
	"POST /apps/{app}/volumes/{volume}/snapshots":  signedIn,
	"POST /apps/{app}/delete":                      signedIn,
}

// concrete fills a route pattern's wildcards for app (machine: one of
// its machines).
func concrete(pattern, app, machine string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	r := strings.NewReplacer("{$}", "", "{app}", app, "{id}", machine, "{action}", "stop", "{version}", "1",
		"{name}", "SOME_SECRET", "{volume}", "vol_none", "{file}", "style.css")
	return method, r.Replace(path)
}

// TestEveryRouteIsAuthorized walks the route table: without a session a
// page redirects to the login and an action is refused (and does
// nothing); with an app token, every route naming another app is refused
// with the API's 403, and its machine keeps running.
func TestEveryRouteIsAuthorized(t *testing.T) {
	e := newEnv(t)
	beta := e.machines("beta")[0].ID
	alpha := e.machines("alpha")[0].ID
	scoped := e.browser()
	csrf := scoped.login(e.alphaTok)

	for _, rt := range e.dash.routes() {
		want, ok := routeAccess[rt.pattern]
		if !ok {
			t.Errorf("route %s has no line in routeAccess", rt.pattern)
			continue
		}
		if want != rt.access {
			t.Errorf("route %s: access %d in the table, %d expected", rt.pattern, rt.access, want)
		}
		method, path := concrete(rt.pattern, "beta", beta)

		// No session.
		anon := e.browser()
		var rec *httptest.ResponseRecorder
		if method == "POST" {
			rec = anon.do(method, path, url.Values{"csrf": {"forged"}, "count": {"3"}, "name": {"X"}, "value": {"v"}})
		} else {
			rec = anon.get(path)
		}
		switch {
		case rt.access == public && rt.pattern == "POST /login":
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s %s without the login form's cookie: %d, want 403", method, path, rec.Code)
			}
		case rt.access == public:
			if rec.Code != http.StatusOK {
				t.Errorf("%s %s (public): %d, want 200", method, path, rec.Code)
			}
		case method == "GET":
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
				t.Errorf("%s %s without a session: %d to %q, want 303 to /login", method, path, rec.Code, rec.Header().Get("Location"))
			}
		default:
			if rec.Code != http.StatusUnauthorized {
				t.Errorf("%s %s without a session: %d, want 401", method, path, rec.Code)
			}
		}

		// An app token of alpha, on beta.
		if !strings.Contains(rt.pattern, "{app}") {
			continue
		}
		if method == "POST" {
			rec = scoped.do(method, path, url.Values{"csrf": {csrf}, "count": {"3"}, "name": {"X"}, "value": {"v"}, "confirm": {"beta"}})
		} else {
			rec = scoped.get(path)
		}
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s %s with alpha's token: %d, want 403\n%s", method, path, rec.Code, rec.Body)
		}
		if rt.pattern != "GET /apps/{app}/logs/stream" && !strings.Contains(rec.Body.String(), "may only act on app alpha") {
			t.Errorf("%s %s with alpha's token: the page does not show the API's message:\n%s", method, path, rec.Body)
		}
	}
	if st := e.machineState("beta", beta); st != types.StateStarted {
		t.Errorf("beta's machine is %s after alpha's token acted on it; want started", st)
	}
	if n := len(e.machines("beta")); n != 1 {
		t.Errorf("beta has %d machines after alpha's token scaled it; want 1", n)
	}

	// The app token sees its own app and only it.
	home := scoped.get("/").Body.String()
	if !strings.Contains(home, `href="/apps/alpha"`) || strings.Contains(home, "beta") {
		t.Errorf("apps list of alpha's token: want alpha only:\n%s", home)
	}
	if rec := scoped.get("/apps/alpha/machines/" + alpha); rec.Code != 200 {
		t.Errorf("alpha's token on its own machine: %d", rec.Code)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	id := e.machines("alpha")[0].ID
	b := e.browser()
	csrf := b.login(e.admin)
	stop := "/apps/alpha/machines/" + id + "/stop"
	for name, form := range map[string]url.Values{"missing": {}, "wrong": {"csrf": {"x" + csrf}}, "empty": {"csrf": {""}}} {
		rec := b.do("POST", stop, form)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "CSRF") {
			t.Errorf("stop with the CSRF token %s: %d, want 403 saying why\n%s", name, rec.Code, rec.Body)
		}
	}
	if st := e.machineState("alpha", id); st != types.StateStarted {
		t.Fatalf("machine is %s after refused stops; want started", st)
	}
	// A form posted from another site is refused even with the token.
	req := httptest.NewRequest("POST", stop, strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	req.AddCookie(b.cookies[sessionCookie])
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "another site") {
		t.Errorf("stop posted from another origin: %d, want 403", rec.Code)
	}
	// Another session's token is no good either.
	other := e.browser()
	otherCSRF := other.login(e.admin)
	if rec := b.do("POST", stop, url.Values{"csrf": {otherCSRF}}); rec.Code != http.StatusForbidden {
		t.Errorf("stop with another session's CSRF token: %d, want 403", rec.Code)
	}
	rec = b.do("POST", stop, url.Values{"csrf": {csrf}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("stop with the CSRF token: %d %s", rec.Code, rec.Body)
	}
	if st := e.machineState("alpha", id); st != types.StateStopped {
		t.Errorf("machine is %s after the stop; want stopped", st)
	}
	// Logout is a form too.
	if rec := b.do("POST", "/logout", url.Values{}); rec.Code != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", rec.Code)
	}
}

func TestLoginCookiesAndLogout(t *testing.T) {
	e := newEnv(t)
	for _, overTLS := range []bool{false, true} {
		b := e.browser()
		b.tls = overTLS
		page := b.get("/login")
		rec := b.do("POST", "/login", url.Values{"csrf": {csrfOf(t, page.Body.String())}, "token": {e.admin}})
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("login: %d %s", rec.Code, rec.Body)
		}
		var sess *http.Cookie
		for _, c := range rec.Result().Cookies() {
			if strings.Contains(c.Value, e.admin) {
				t.Errorf("cookie %s holds the token", c.Name)
			}
			if c.Name == sessionCookie {
				sess = c
			}
		}
		if sess == nil {
			t.Fatalf("login set no session cookie: %v", rec.Header()["Set-Cookie"])
		}
		if !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure != overTLS || sess.Path != "/" {
			t.Errorf("session cookie over TLS=%v: HttpOnly=%v SameSite=%v Secure=%v Path=%q; want HttpOnly, Strict, Secure only over TLS, /",
				overTLS, sess.HttpOnly, sess.SameSite, sess.Secure, sess.Path)
		}
		home := b.get("/")
		if home.Code != 200 || strings.Contains(home.Body.String(), e.admin) {
			t.Fatalf("home after login: %d (or the token is in the page)", home.Code)
		}
		if rec := b.do("POST", "/logout", url.Values{"csrf": {csrfOf(t, home.Body.String())}}); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
			t.Fatalf("logout: %d %s", rec.Code, rec.Header().Get("Location"))
		}
		// The old cookie is dead even if a browser kept it.
		b.cookies[sessionCookie] = sess
		if rec := b.get("/"); rec.Code != http.StatusSeeOther {
			t.Errorf("GET / with the session cookie after logout: %d, want 303 to /login", rec.Code)
		}
	}

	// A bad token is refused with the API's message and no session.
	b := e.browser()
	page := b.get("/login")
	rec := b.do("POST", "/login", url.Values{"csrf": {csrfOf(t, page.Body.String())}, "token": {"hgr_nonsense"}})
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "unknown token") || b.cookies[sessionCookie] != nil {
		t.Errorf("login with a bad token: %d, session %v\n%s", rec.Code, b.cookies[sessionCookie], rec.Body)
	}
	// The login form's CSRF token must match its cookie.
	b = e.browser()
	b.get("/login")
	if rec := b.do("POST", "/login", url.Values{"csrf": {"forged"}, "token": {e.admin}}); rec.Code != http.StatusForbidden {
		t.Errorf("login with a forged CSRF field: %d, want 403", rec.Code)
	}
}

// TestRevokedTokenEndsSession: once the token is revoked the next page
// says so and the session is over.
func TestRevokedTokenEndsSession(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(e.alphaTok)
	if code, body := e.apiCall(e.admin, "DELETE", "/v1/tokens/"+e.alphaID, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	rec := b.get("/apps/alpha")
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "revoked") {
		t.Fatalf("page after the revoke: %d\n%s", rec.Code, rec.Body)
	}
	if rec := b.get("/"); rec.Code != http.StatusSeeOther {
		t.Errorf("next page: %d, want 303 to /login (the session ended)", rec.Code)
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(e.admin)
	e.clock.add(59 * time.Minute)
	if rec := b.get("/"); rec.Code != 200 {
		t.Fatalf("after 59 minutes: %d, want 200 (the idle limit is an hour)", rec.Code)
	}
	e.clock.add(61 * time.Minute)
	if rec := b.get("/"); rec.Code != http.StatusSeeOther {
		t.Fatalf("after 61 idle minutes: %d, want 303 to /login", rec.Code)
	}
	// In use all along, a session still ends after its TTL.
	b = e.browser()
	b.login(e.admin)
	for i := 0; i < 24; i++ {
		e.clock.add(30 * time.Minute)
		rec := b.get("/")
		if i < 23 && rec.Code != 200 {
			t.Fatalf("after %d half hours in use: %d", i+1, rec.Code)
		}
		if i == 23 && rec.Code != http.StatusSeeOther {
			t.Fatalf("after 12 hours: %d, want 303 to /login", rec.Code)
		}
	}
}

// TestPages opens every page as the admin and checks what it shows.
func TestPages(t *testing.T) {
	e := newEnv(t)
	m := e.machines("alpha")[0]
	b := e.browser()
	b.login(e.admin)
	pages := map[string][]string{
		"/":                                     {`href="/apps/alpha"`, `href="/apps/beta"`, "1 started", "v2", "http://alpha.example.test:8080", "deployed"},
		"/?q=alp":                               {`href="/apps/alpha"`, "1 of 2 apps"},
		"/apps/alpha":                           {m.ID, "started", "app:v2", "v1", "Roll back to v1", "Metrics", "<strong>Responses by status</strong> (peak 3.00/s)", "2xx 3.00/s", "p99 12ms", "<polyline class=\"l0\" points=\"0.0,", "(peak 48.0 MiB)", "a point every 15 s", "No Flycast address", "tst", "release v2 (", "by admin"},
		"/apps/alpha/machines/" + m.ID:          {m.ID, "started", "app:v2", "launch"},
		"/apps/beta":                            {"No points yet"},
		"/apps/alpha?window=24h":                {"a point every 300 s", `<strong aria-current="true">24h</strong>`, `href="/apps/alpha?window=5m#metrics"`},
		"/apps/alpha/releases/diff?from=1&to=2": {"v1 → v2", `class="ddel">-   IMAGE = &#34;app:v1&#34;`, `class="dadd">&#43;   IMAGE = &#34;app:v2&#34;`},
		"/apps/alpha/logs":                      {"Logs of alpha", `data-stream="/apps/alpha/logs/stream"`},
		"/apps/alpha/logs?machine=" + m.ID:      {"machine " + m.ID},
		"/apps/alpha/logs?since=1h&lines=100":   {"lines of the last 1h (at most 100)", `<option value="1h" selected>`},
		"/static/app.js":                        {"use strict"},
	}
	for path, wants := range pages {
		rec := b.get(path)
		if rec.Code != 200 {
			t.Errorf("GET %s: %d\n%s", path, rec.Code, rec.Body)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(rec.Body.String(), w) {
				t.Errorf("GET %s: no %q in the page:\n%s", path, w, rec.Body)
			}
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	if body := b.get("/?q=alp").Body.String(); strings.Contains(body, `href="/apps/beta"`) {
		t.Errorf("search for alp lists beta")
	}
	for path, code := range map[string]int{"/apps/nope": 404, "/apps/alpha/machines/nope": 404, "/apps/a%2Fb": 400, "/apps/alpha/releases/diff?from=x": 400, "/apps/alpha/logs?lines=0": 400, "/nowhere": 404} {
		if rec := b.get(path); rec.Code != code {
			t.Errorf("GET %s: %d, want %d", path, rec.Code, code)
		}
	}
	// A section whose API call fails shows the API's message; the rest of
	// the page stays (this daemon has no volume manager).
	if body := b.get("/apps/alpha").Body.String(); !strings.Contains(body, "volumes are not configured on this daemon") || !strings.Contains(body, "Scale") {
		t.Errorf("app page without volumes: no section error, or no rest of the page")
	}
	// An API error is shown with its message and a hint.
	if body := b.get("/apps/nope").Body.String(); !strings.Contains(body, "Hint:") || !strings.Contains(body, "nope") {
		t.Errorf("404 page lacks the API's message or a hint:\n%s", body)
	}
}

// TestActions runs every action as the admin: stop, start, scale,
// rollback, secrets set (staged and deployed) and unset.
func TestActions(t *testing.T) {
	e := newEnv(t)
	id := e.machines("alpha")[0].ID
	b := e.browser()
	csrf := b.login(e.admin)
	post := func(path string, form url.Values) string {
		t.Helper()
		form.Set("csrf", csrf)
		rec := b.do("POST", path, form)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", path, rec.Code, rec.Body)
		}
		next := b.get(rec.Header().Get("Location"))
		if next.Code != 200 {
			t.Fatalf("after POST %s: GET %s: %d", path, rec.Header().Get("Location"), next.Code)
		}
		return next.Body.String()
	}
	if page := post("/apps/alpha/machines/"+id+"/stop", url.Values{"back": {"machine"}}); !strings.Contains(page, "stop done, it is now stopped") || !strings.Contains(page, "Machine "+id) {
		t.Errorf("page after stop does not say the machine stopped:\n%s", page)
	}
	if page := post("/apps/alpha/machines/"+id+"/start", url.Values{}); !strings.Contains(page, "start done, it is now started") {
		t.Errorf("page after start does not say the machine started:\n%s", page)
	}
	if rec := b.do("POST", "/apps/alpha/machines/"+id+"/explode", url.Values{"csrf": {csrf}}); rec.Code != 404 {
		t.Errorf("unknown machine action: %d, want 404", rec.Code)
	}

	page := post("/apps/alpha/scale", url.Values{"group": {"app"}, "count": {"2"}})
	if !strings.Contains(page, "Scaled app to 2") || len(e.machines("alpha")) != 2 {
		t.Errorf("after scale to 2: %d machines; page:\n%s", len(e.machines("alpha")), page)
	}
	page = post("/apps/alpha/scale", url.Values{"group": {"app"}, "count": {"two"}})
	if !strings.Contains(page, "is not a number") {
		t.Errorf("scale to \"two\": no error shown:\n%s", page)
	}

	page = post("/apps/alpha/releases/1/rollback", url.Values{})
	if !strings.Contains(page, "Rolled back to v1") {
		t.Errorf("rollback page:\n%s", page)
	}
	for _, m := range e.machines("alpha") {
		if m.Config.Env["IMAGE"] != "app:v1" {
			t.Errorf("machine %s runs %s after the rollback to v1", m.ID, m.Config.Env["IMAGE"])
		}
	}

	const value = "s3cr3t-value-never-shown"
	page = post("/apps/alpha/secrets", url.Values{"name": {"DB_PASSWORD"}, "value": {value}, "stage": {"1"}})
	if !strings.Contains(page, "DB_PASSWORD staged") || !strings.Contains(page, "Deploy staged secrets") || !strings.Contains(page, `<span class="badge busy">Staged</span>`) {
		t.Errorf("staged secret page:\n%s", page)
	}
	page = post("/apps/alpha/secrets/deploy", url.Values{})
	if !strings.Contains(page, "Secrets deployed") || strings.Contains(page, "Deploy staged secrets") {
		t.Errorf("secrets deploy page:\n%s", page)
	}
	page = post("/apps/alpha/secrets", url.Values{"name": {"API_KEY"}, "value": {value + "2"}})
	if !strings.Contains(page, "API_KEY set and deployed") {
		t.Errorf("set secret page:\n%s", page)
	}
	page = post("/apps/alpha/secrets", url.Values{"name": {"bad name"}, "value": {"x"}})
	if !strings.Contains(page, "flash-err") {
		t.Errorf("a bad secret name shows no error:\n%s", page)
	}
	// Nothing secret is in any page.
	for _, path := range []string{"/", "/apps/alpha", "/apps/alpha/machines/" + e.machines("alpha")[0].ID, "/apps/alpha/releases/diff", "/apps/alpha/logs"} {
		body := b.get(path).Body.String()
		if strings.Contains(body, value) || strings.Contains(body, e.admin) {
			t.Errorf("GET %s shows a secret value or the token", path)
		}
		if path == "/apps/alpha" && (!strings.Contains(body, "DB_PASSWORD") || !strings.Contains(body, "API_KEY")) {
			t.Errorf("app page does not list the secrets' names")
		}
	}
	page = post("/apps/alpha/secrets/DB_PASSWORD/unset", url.Values{})
	if !strings.Contains(page, "DB_PASSWORD unset and deployed") {
		t.Errorf("unset page:\n%s", page)
	}

	// An action the API refuses shows its message.
	page = post("/apps/alpha/volumes/vol_x/snapshots", url.Values{})
	if !strings.Contains(page, "volumes are not configured on this daemon") || !strings.Contains(page, "flash-err") {
		t.Errorf("snapshot without volumes: page does not show the API's error:\n%s", page)
	}

	// Deleting an app takes its name typed again.
	page = post("/apps/beta/delete", url.Values{"confirm": {"bet"}})
	if !strings.Contains(page, "was not deleted") || len(e.machines("beta")) != 1 {
		t.Errorf("delete with a wrong name: page:\n%s", page)
	}
	page = post("/apps/beta/delete", url.Values{"confirm": {"beta"}})
	if !strings.Contains(page, "App beta deleted") || strings.Contains(page, `href="/apps/beta"`) {
		t.Errorf("after deleting beta, the apps page:\n%s", page)
	}
	if code, _ := e.apiCall(e.admin, "GET", "/v1/apps/beta", nil); code != 404 {
		t.Errorf("GET /v1/apps/beta after the delete: %d, want 404", code)
	}
}

// TestLiveProgress: the script's form of a release action (Accept:
// application/x-ndjson) gets the API's progress lines as they come, then a
// last line that says where the outcome is shown.
func TestLiveProgress(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	csrf := b.login(e.admin)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	post := func(path string, form url.Values) (*http.Response, []string) {
		t.Helper()
		form.Set("csrf", csrf)
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/x-ndjson")
		req.AddCookie(b.cookies[sessionCookie])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		return resp, lines
	}
	resp, lines := post("/apps/alpha/scale", url.Values{"group": {"app"}, "count": {"2"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(lines) < 3 {
		t.Fatalf("live scale: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], `"event"`) || !strings.Contains(lines[len(lines)-2], `"release"`) {
		t.Errorf("live scale: want the API's events, then its release:\n%s", strings.Join(lines, "\n"))
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `"done":{"next":"/apps/alpha","ok":true,"message":"Scaled app to 2 machine(s) (release v3)."}`) {
		t.Errorf("live scale's last line: %s", last)
	}
	if page := b.get("/apps/alpha").Body.String(); !strings.Contains(page, "Scaled app to 2") {
		t.Errorf("the page after a live scale does not show its outcome")
	}
	// A failure ends the same way, with the message.
	_, lines = post("/apps/alpha/releases/99/rollback", url.Values{})
	if last := lines[len(lines)-1]; !strings.Contains(last, `"ok":false`) || !strings.Contains(last, "99") {
		t.Errorf("live rollback to a release that does not exist, last line: %s", last)
	}
}

// TestLogStream: the live tail passes the API's NDJSON stream through
// while it is written.
func TestLogStream(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(e.admin)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/apps/alpha/logs/stream", nil)
	req.AddCookie(b.cookies[sessionCookie])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("log stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestDiffLines(t *testing.T) {
	got := diffLines("a\nb\nc\n", "a\nc\nd\n")
	want := []diffLine{{" ", "a"}, {"-", "b"}, {" ", "c"}, {"+", "d"}}
	if len(got) != len(want) {
		t.Fatalf("diff: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("diff: %v, want %v", got, want)
		}
	}
	if got := diffLines("", "x"); len(got) != 1 || got[0] != (diffLine{"+", "x"}) {
		t.Errorf("diff of nothing and x: %v", got)
	}
}
