package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// Who gets past authorization on a route.
type policy int

const (
	// everyToken: every valid token (the handler then shows an app token
	// only its app's objects).
	everyToken policy = iota
	// appCallers: org tokens and a token of the app the request names
	// (in its path, or its body or query: appOf).
	appCallers
	// orgCallers: org tokens only.
	orgCallers
)

// routePolicy is the authorization matrix's expectation for every route.
// It is written out here, not derived from the route table, so a route
// added to the table without a line here fails TestAuthorizationMatrix.
var routePolicy = map[string]policy{
	"GET /v1/info":             everyToken,
	"GET /v1/openapi.json":     everyToken,
	"GET /v1/platform/regions": everyToken,

	"POST /v1/platform/placements":                        everyToken,
	"POST /v1/postgres":                                   everyToken,
	"GET /v1/postgres/{cluster}":                          everyToken,
	"GET /v1/postgres/{cluster}/users/{user}/credentials": everyToken,
	"GET /v1/apps":                                        everyToken,
	"POST /v1/apps":                                       orgCallers,
	"GET /v1/apps/{app}":                                  appCallers,
	"DELETE /v1/apps/{app}":                               appCallers,
	"GET /v1/hosts":                                       orgCallers,
	"POST /v1/hosts/{id}/drain":                           orgCallers,
	"DELETE /v1/hosts/{id}/drain":                         orgCallers,
	"DELETE /v1/hosts/{id}":                               orgCallers,

	"GET /v1/apps/{app}/machines":                        appCallers,
	"POST /v1/apps/{app}/machines":                       appCallers,
	"GET /v1/apps/{app}/machines/{id}":                   appCallers,
	"POST /v1/apps/{app}/machines/{id}":                  appCallers,
	"DELETE /v1/apps/{app}/machines/{id}":                appCallers,
	"POST /v1/apps/{app}/machines/{id}/start":            appCallers,
	"POST /v1/apps/{app}/machines/{id}/stop":             appCallers,
	"GET /v1/apps/{app}/machines/{id}/wait":              appCallers,
	"GET /v1/apps/{app}/machines/{id}/events":            appCallers,
	"POST /v1/apps/{app}/machines/{id}/lease":            appCallers,
	"GET /v1/apps/{app}/machines/{id}/lease":             appCallers,
	"DELETE /v1/apps/{app}/machines/{id}/lease":          appCallers,
	"POST /v1/apps/{app}/machines/{id}/suspend":          appCallers,
	"POST /v1/apps/{app}/machines/{id}/restart":          appCallers,
	"POST /v1/apps/{app}/machines/{id}/signal":           appCallers,
	"POST /v1/apps/{app}/machines/{id}/cordon":           appCallers,
	"POST /v1/apps/{app}/machines/{id}/uncordon":         appCallers,
	"GET /v1/apps/{app}/machines/{id}/metadata":          appCallers,
	"POST /v1/apps/{app}/machines/{id}/metadata/{key}":   appCallers,
	"DELETE /v1/apps/{app}/machines/{id}/metadata/{key}": appCallers,
	"GET /v1/apps/{app}/machines/{id}/versions":          appCallers,
	"POST /v1/apps/{app}/machines/{id}/exec":             appCallers,
	"GET /v1/apps/{app}/machines/{id}/console":           appCallers,
	"GET /v1/apps/{app}/machines/{id}/ps":                appCallers,
	"GET /v1/apps/{app}/proxy":                           appCallers,
	"GET /v1/apps/{app}/machines/{id}/files":             appCallers,
	"PUT /v1/apps/{app}/machines/{id}/files":             appCallers,
	"GET /v1/apps/{app}/machines/{id}/files/stat":        appCallers,

	"GET /v1/apps/{app}/releases":                     appCallers,
	"GET /v1/apps/{app}/releases/{version}":           appCallers,
	"POST /v1/apps/{app}/releases/{version}/rollback": appCallers,
	"POST /v1/apps/{app}/scale":                       appCallers,
	"POST /v1/apps/{app}/restart":                     appCallers,
	"POST /v1/deploys":                                appCallers, // the app of the fly.toml
	"GET /v1/apps/{app}/logs":                         appCallers,
	"GET /v1/apps/{app}/metrics":                      appCallers,
	"GET /v1/apps/{app}/logs/retention":               appCallers,
	"PUT /v1/apps/{app}/logs/retention":               appCallers,
	"GET /v1/log-sinks":                               orgCallers,
	"POST /v1/log-sinks":                              orgCallers,
	"DELETE /v1/log-sinks/{id}":                       orgCallers,

	"GET /v1/images":       everyToken,
	"POST /v1/images":      appCallers, // the app of ?ref=
	"POST /v1/images/pull": everyToken,

	"POST /v1/cluster/join-tokens": orgCallers,
	"GET /v1/cluster/members":      orgCallers,

	"GET /v1/tokens":         orgCallers,
	"POST /v1/tokens":        orgCallers,
	"DELETE /v1/tokens/{id}": orgCallers,

	"POST /v1/apps/{app}/pg/consensus":                  appCallers,
	"GET /v1/apps/{app}/secrets":                        appCallers,
	"POST /v1/apps/{app}/secrets":                       appCallers,
	"GET /v1/apps/{app}/secrets/{secret_name}":          appCallers,
	"POST /v1/apps/{app}/secrets/{secret_name}":         appCallers,
	"DELETE /v1/apps/{app}/secrets/{secret_name}":       appCallers,
	"POST /v1/apps/{app}/secrets_deploy":                appCallers,
	"GET /v1/apps/{app}/secretkeys":                     appCallers,
	"GET /v1/apps/{app}/secretkeys/{secret_name}":       appCallers,
	"POST /v1/apps/{app}/secretkeys/{secret_name}":      appCallers,
	"DELETE /v1/apps/{app}/secretkeys/{secret_name}":    appCallers,
	"POST /v1/apps/{app}/secretkeys/{secret_name}/{op}": appCallers,

	"GET /v1/apps/{app}/volumes":                        appCallers,
	"POST /v1/apps/{app}/volumes":                       appCallers,
	"GET /v1/apps/{app}/volumes/{volume_id}":            appCallers,
	"POST /v1/apps/{app}/volumes/{volume_id}":           appCallers,
	"PUT /v1/apps/{app}/volumes/{volume_id}":            appCallers,
	"DELETE /v1/apps/{app}/volumes/{volume_id}":         appCallers,
	"PUT /v1/apps/{app}/volumes/{volume_id}/extend":     appCallers,
	"GET /v1/apps/{app}/volumes/{volume_id}/snapshots":  appCallers,
	"POST /v1/apps/{app}/volumes/{volume_id}/snapshots": appCallers,

	"GET /v1/apps/{app}/certificates":                      appCallers,
	"POST /v1/apps/{app}/certificates":                     appCallers,
	"GET /v1/apps/{app}/certificates/{hostname}":           appCallers,
	"POST /v1/apps/{app}/certificates/{hostname}/check":    appCallers,
	"DELETE /v1/apps/{app}/certificates/{hostname}":        appCallers,
	"POST /v1/apps/{app}/certificates/acme":                appCallers,
	"POST /v1/apps/{app}/certificates/custom":              appCallers,
	"DELETE /v1/apps/{app}/certificates/{hostname}/acme":   appCallers,
	"DELETE /v1/apps/{app}/certificates/{hostname}/custom": appCallers,

	"GET /v1/apps/{app}/ips":                    appCallers,
	"POST /v1/apps/{app}/ips":                   appCallers,
	"DELETE /v1/apps/{app}/ips/{ip}":            appCallers,
	"GET /v1/apps/{app}/ip_assignments":         appCallers,
	"POST /v1/apps/{app}/ip_assignments":        appCallers,
	"DELETE /v1/apps/{app}/ip_assignments/{ip}": appCallers,
}

// routeRequest is what the matrix sends beyond the path: a query and a
// body naming app "a" where the route takes the app from them, and bounds
// on anything that could wait.
var routeRequest = map[string]struct{ query, body string }{
	"POST /v1/deploys":                                  {body: `{"config":"app = \"a\"\n","image":"a:v1"}`},
	"POST /v1/images":                                   {query: "ref=a:v1"},
	"GET /v1/apps/{app}/machines/{id}/wait":             {query: "timeout=1"},
	"GET /v1/apps/{app}/proxy":                          {query: "port=5432"},
	"POST /v1/apps/{app}/certificates/{hostname}/check": {query: "wait=1s"},
}

var pathValues = map[string]string{"app": "a", "id": "m_none", "version": "1", "key": "k", "secret_name": "S",
	"volume_id": "vol_none", "hostname": "a.example.com", "ip": "fdaa::1", "op": "encrypt", "cluster": "c", "user": "u"}

// matrixServer is a real API over a real store, with app a and b and a
// token of each kind (the revoked one an org token).
func matrixServer(t *testing.T) (http.Handler, map[string]string, store.Store) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sup := supervisor.New(supervisor.Options{Store: st})
	images, err := image.NewStore(filepath.Join(dir, "images"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := secrets.Open(st, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := certs.New(certs.Options{Dir: filepath.Join(dir, "certs"), Domain: "apps.test", ACMEDirectory: "off", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	as := apps.New(apps.Options{Store: st, Org: "acme"})
	d := &deploy.Deployer{Store: st, Sup: sup, Images: images, EnsureApp: as.Ensure, AppExists: as.Exists, Secrets: sec}
	s := New(Options{Store: st, Apps: as, Sup: sup, Deployer: d, Images: images, Secrets: sec, Certs: cm, Org: "acme", Region: "tst"})
	for _, a := range []string{"a", "b"} {
		if err := as.Ensure(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	toks := map[string]string{}
	for name, tok := range map[string]auth.Token{
		"admin": {Name: "admin", Scope: auth.ScopeOrg, Org: "acme"}, "org": {Name: "ci", Scope: auth.ScopeOrg, Org: "acme"},
		"app a": {Name: "a-deployer", Scope: auth.ScopeApp, Org: "acme", App: "a"}, "app b": {Name: "b-deployer", Scope: auth.ScopeApp, Org: "acme", App: "b"},
		"revoked": {Name: "old", Scope: auth.ScopeOrg, Org: "acme"},
	} {
		plain, created, err := auth.Create(ctx, st, tok)
		if err != nil {
			t.Fatal(err)
		}
		if name == "revoked" {
			if _, err := auth.Revoke(ctx, st, created.ID); err != nil {
				t.Fatal(err)
			}
		}
		toks[name] = plain
	}
	return s.Handler(), toks, st
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// TestAuthorizationMatrix sends every route of the table as every kind of
// caller: no token and a revoked one get 401; a caller the route's policy
// refuses gets 403; the others get past authorization (any status but
// 401 and 403). The app named is a; "app b" is an app token of another app.
func TestAuthorizationMatrix(t *testing.T) {
	table := New(Options{}).routes()
	inTable := map[string]bool{}
	for _, rt := range table {
		inTable[rt.pattern] = true
		if _, ok := routePolicy[rt.pattern]; !ok {
			t.Errorf("route %s has no line in routePolicy: say who may call it", rt.pattern)
		}
	}
	for pattern := range routePolicy {
		if !inTable[pattern] {
			t.Errorf("routePolicy has %s, which is not in the route table", pattern)
		}
	}
	// Refused callers first: an allowed one may change the state (delete
	// the app).
	callers := []string{"none", "revoked", "app b", "app a", "org", "admin"}
	for _, rt := range table {
		pol, ok := routePolicy[rt.pattern]
		if !ok {
			continue
		}
		t.Run(rt.pattern, func(t *testing.T) {
			h, toks, _ := matrixServer(t)
			method, path, _ := strings.Cut(rt.pattern, " ")
			path = pathParam.ReplaceAllStringFunc(path, func(m string) string { return pathValues[m[1:len(m)-1]] })
			req := routeRequest[rt.pattern]
			if req.query != "" {
				path += "?" + req.query
			}
			body := req.body
			if body == "" && (method == "POST" || method == "PUT") {
				body = "{}"
			}
			for _, c := range callers {
				var want int // 0: past authorization
				switch {
				case c == "none" || c == "revoked":
					want = http.StatusUnauthorized
				case c == "app a" && pol == orgCallers, c == "app b" && pol != everyToken:
					want = http.StatusForbidden
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				r := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
				if c != "none" {
					r.Header.Set("Authorization", "Bearer "+toks[c])
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				cancel()
				got := rec.Code
				switch {
				case want != 0 && got != want:
					t.Errorf("%s as %s: %d %s, want %d", rt.pattern, c, got, strings.TrimSpace(rec.Body.String()), want)
				case want == 0 && (got == http.StatusUnauthorized || got == http.StatusForbidden):
					t.Errorf("%s as %s: %d %s, want past authorization", rt.pattern, c, got, strings.TrimSpace(rec.Body.String()))
				}
			}
		})
	}
}

// TestAppTokenDeploysOnlyItsApp: an app token cannot reach another app by
// naming it in fly.toml (with no app in the body), cannot create an app,
// and a refused deploy is 403 and changes nothing.
func TestAppTokenDeploysOnlyItsApp(t *testing.T) {
	h, toks, st := matrixServer(t)
	ctx := context.Background()
	archive := testArchive(t, 4<<10)
	for _, ref := range []string{"a:v1", "b:v1"} {
		if code, body := upload(t, h, toks["admin"], ref, archive); code != http.StatusOK {
			t.Fatalf("upload %s: %d %s", ref, code, body)
		}
	}
	if code, body := call(t, h, toks["app a"], "POST", "/v1/apps/a/machines", `{"config":{"image":"b:v1"}}`); code != http.StatusForbidden {
		t.Errorf("machine of a with b's image: %d %s, want 403", code, body)
	}
	for _, c := range []struct{ name, body string }{
		{"fly.toml names another app", `{"config":"app = \"b\"\n","image":"b:v1"}`},
		{"fly.toml names another app, image of its own", `{"config":"app = \"b\"\n","image":"a:v1"}`},
		{"fly.toml names a new app", `{"config":"app = \"new\"\n","image":"a:v1"}`},
		{"body names another app", `{"app":"b","config":"app = \"a\"\n","image":"a:v1"}`},
		{"image of another app", `{"config":"app = \"a\"\n","image":"b:v1"}`},
	} {
		code, body := call(t, h, toks["app a"], "POST", "/v1/deploys", c.body)
		if code != http.StatusForbidden {
			t.Errorf("%s: %d %s, want 403", c.name, code, body)
		}
	}
	for _, app := range []string{"b", "new"} {
		if rels, err := deploy.Releases(ctx, st, app); err != nil || len(rels) != 0 {
			t.Errorf("app %s has releases %v (%v) after refused deploys", app, rels, err)
		}
	}
	if _, err := st.Get(ctx, apps.Key("new")); err == nil {
		t.Error("an app token created app new")
	}
	// An app token's deploy to an app that no longer exists does not
	// bring it back.
	code, body := call(t, h, toks["admin"], "DELETE", "/v1/apps/a", "")
	if code != http.StatusAccepted {
		t.Fatalf("delete a: %d %s", code, body)
	}
	if code, body := call(t, h, toks["app a"], "POST", "/v1/deploys", `{"config":"app = \"a\"\n","image":"a:v1"}`); code != http.StatusForbidden {
		t.Errorf("deploy to deleted app a: %d %s, want 403", code, body)
	}
	if _, err := st.Get(ctx, apps.Key("a")); err == nil {
		t.Error("an app token re-created its deleted app")
	}
	// An org token still creates an app by deploying (the stream carries
	// the deploy's own outcome).
	if code, body := call(t, h, toks["org"], "POST", "/v1/deploys", `{"config":"app = \"c\"\n","image":"c:v1"}`); code != http.StatusOK {
		t.Errorf("org token deploy: %d %s", code, body)
	}
	// A config that cannot deploy is a 400 naming the problem, for every
	// token, before any stream (not a 200 with an error at its end).
	for _, c := range []struct{ name, body, want string }{
		{"malformed", `{"config":"app = \"c\"\n[http_service]\ninternal_port = \"eighty\"\n","image":"c:v1"}`, "internal_port"},
		{"no app", `{"config":"primary_region = \"tst\"\n","image":"c:v1"}`, "no app name"},
		{"invalid", `{"config":"app = \"c\"\n[[restart]]\npolicy = \"sometimes\"\n","image":"c:v1"}`, "policy"},
	} {
		code, body := call(t, h, toks["org"], "POST", "/v1/deploys", c.body)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s config: %d %s, want 400 naming %s", c.name, code, body, c.want)
		}
	}
}

// TestDeployRechecksTheAppForAppTokens: the app an app token deploys to is
// checked again by the deployer, so an app deleted after the API's
// check is not re-created.
func TestDeployRechecksTheAppForAppTokens(t *testing.T) {
	_, _, st := matrixServer(t)
	ctx := context.Background()
	as := apps.New(apps.Options{Store: st, Org: "acme"})
	d := &deploy.Deployer{Store: st, EnsureApp: as.Ensure, AppExists: as.Exists}
	_, err := d.Deploy(ctx, deploy.Request{Config: []byte("app = \"gone\"\n"), Image: "gone:v1", NoCreateApp: true}, nil)
	if !errors.Is(err, types.ErrForbidden) {
		t.Fatalf("deploy to a missing app without leave to create it: %v, want forbidden", err)
	}
	if ok, _ := as.Exists(ctx, "gone"); ok {
		t.Fatal("the app was created")
	}
}

func TestRefOfApp(t *testing.T) {
	for ref, want := range map[string]bool{"a": true, "a:v1": true, "a@sha256:00": true, " a:v1 ": true,
		"ab:v1": false, "b:v1": false, "a/x:v1": false, "localhost:5000/a:v1": false, "": false, "index.docker.io/library/a:v1": false} {
		if got := refOfApp(ref, "a"); got != want {
			t.Errorf("refOfApp(%q, a) = %v, want %v", ref, got, want)
		}
	}
}

// unavailableStore answers every read as a store without quorum does.
type unavailableStore struct{ store.Store }

func (unavailableStore) Get(ctx context.Context, key string) (store.KV, error) {
	return store.KV{}, fmt.Errorf("get %q: %w", key, store.ErrUnavailable)
}

// TestTokenUncheckableIs503: when the token cannot be checked because the
// store is unavailable (an etcd without quorum), the answer is a 503 that
// says so, not a 401 that sends the caller to look at a good token (a
// cluster host answered 401 to its own admin token while its etcd was
// electing a leader). A wrong token is still a 401.
func TestTokenUncheckableIs503(t *testing.T) {
	s, _, tok := testServer(t)
	o := s.options()
	o.Store = unavailableStore{o.Store}
	h := New(o).Handler()
	req := httptest.NewRequest("GET", "/v1/apps", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "unavailable") {
		t.Fatalf("token check with the store unavailable: %d %s, want 503", rec.Code, rec.Body)
	}
	_, good, _ := testServer(t)
	req = httptest.NewRequest("GET", "/v1/apps", nil)
	req.Header.Set("Authorization", "Bearer hgr_not_a_token")
	rec = httptest.NewRecorder()
	good.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", rec.Code)
	}
}
