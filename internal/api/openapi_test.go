package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// testServer is an API over a real store and a supervisor without a
// runtime: enough for apps, tokens, auth and the document.
func testServer(t testing.TB) (*Server, http.Handler, string) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := New(Options{Store: st, Sup: supervisor.New(supervisor.Options{Store: st}), Org: "acme", Region: "tst"})
	plain, _, err := auth.Create(context.Background(), st, auth.Token{Name: "admin", Scope: auth.ScopeOrg, Org: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Handler(), plain
}

// options are the Options s was made with, to make a server like it with
// one more dependency.
func (s *Server) options() Options {
	return Options{Store: s.store, Apps: s.apps, Sup: s.sup, Deployer: s.deployer, Images: s.images, Secrets: s.secrets,
		Volumes: s.volumes, Certs: s.certs, Log: s.log, Org: s.org, Region: s.region, Domain: s.domain, HTTPPort: s.httpPort, LogSinks: s.logSinks}
}

func TestOpenAPIDocument(t *testing.T) {
	s, h, tok := testServer(t)
	req := httptest.NewRequest("GET", "/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET openapi.json: %d %s", rec.Code, rec.Body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("document does not parse: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("document is not valid OpenAPI: %v", err)
	}
	// Every route served is described, and every description is of a
	// route served.
	for _, rt := range s.routes() {
		pattern := rt.pattern
		method, path, _ := strings.Cut(pattern, " ")
		p := pathParamRE.ReplaceAllStringFunc(strings.TrimPrefix(path, "/v1"), func(m string) string {
			name := pathParamRE.FindStringSubmatch(m)[1]
			if n, ok := pathParamNames[name]; ok {
				name = n
			}
			return "{" + name + "}"
		})
		item := doc.Paths.Value(p)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("route %s is not in the document (as %s %s)", pattern, method, p)
		}
	}
	served := map[string]bool{}
	for _, rt := range s.routes() {
		if served[rt.pattern] {
			t.Errorf("route %s is in the table twice", rt.pattern)
		}
		served[rt.pattern] = true
	}
	// Spot checks: Fly's names, schemas from the Go types, extensions marked.
	m := doc.Paths.Value("/apps/{app_name}/machines/{machine_id}").Post
	if m.OperationID != "Machines_update" || m.Parameters.GetByInAndName("header", NonceHeader) == nil {
		t.Errorf("Machines_update: %+v", m)
	}
	machine := doc.Components.Schemas["Machine"].Value
	for _, f := range []string{"id", "name", "state", "region", "instance_id", "private_ip", "config", "image_ref", "events", "checks", "created_at", "updated_at", "nonce"} {
		if machine.Properties[f] == nil {
			t.Errorf("Machine schema lacks %s", f)
		}
	}
	lease := doc.Components.Schemas["LeaseResponse"].Value
	for _, f := range []string{"status", "data", "nonce", "expires_at", "owner", "description", "version"} {
		if lease.Properties[f] == nil {
			t.Errorf("LeaseResponse schema lacks %s", f)
		}
	}
	if ext := doc.Paths.Value("/tokens").Get.Extensions["x-hangar-extension"]; ext != true {
		t.Errorf("tokens list not marked as an extension: %v", ext)
	}
	if ext := doc.Paths.Value("/apps/{app_name}/machines").Get.Extensions["x-hangar-extension"]; ext != nil {
		t.Errorf("machines list marked as an extension")
	}
}

func call(t *testing.T, h http.Handler, token, method, path, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestTokensAndScopes(t *testing.T) {
	_, h, admin := testServer(t)
	for _, app := range []string{"one", "two"} {
		if code, body := call(t, h, admin, "POST", "/v1/apps", `{"app_name":"`+app+`","org_slug":"acme"}`); code != 201 {
			t.Fatalf("create %s: %d %s", app, code, body)
		}
	}
	code, body := call(t, h, admin, "POST", "/v1/tokens", `{"app":"one","name":"ci","expiry":"1h"}`)
	if code != 201 {
		t.Fatalf("create token: %d %s", code, body)
	}
	var created types.CreateTokenResponse
	if err := json.Unmarshal([]byte(body), &created); err != nil || !strings.HasPrefix(created.Token, "hgr_") || created.Scope != "app" || created.ExpiresAt == nil {
		t.Fatalf("created: %+v %v", created, err)
	}
	appTok := created.Token

	code, body = call(t, h, appTok, "GET", "/v1/apps", "")
	if code != 200 || !strings.Contains(body, `"one"`) || strings.Contains(body, `"two"`) {
		t.Fatalf("app token lists: %d %s", code, body)
	}
	if code, _ := call(t, h, appTok, "GET", "/v1/apps/one", ""); code != 200 {
		t.Fatalf("app token on its app: %d", code)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/apps/two", ""}, {"GET", "/v1/apps/two/machines", ""}, {"DELETE", "/v1/apps/two", ""},
		{"POST", "/v1/apps", `{"app_name":"three"}`}, {"GET", "/v1/tokens", ""}, {"POST", "/v1/tokens", `{"name":"x"}`},
		{"GET", "/v1/apps/one%2F..%2Ftwo", ""}, {"GET", "/v1/apps/two%2Fx/machines", ""},
	} {
		if code, body := call(t, h, appTok, c.method, c.path, c.body); code != 403 {
			t.Errorf("app token %s %s: %d %s, want 403", c.method, c.path, code, body)
		}
	}
	// Bad requests name the field.
	for body, field := range map[string]string{
		`{"expiry":"soon"}`: "expiry",
		`{"app":"nope"}`:    "nope",
		`{"name": 5}`:       "name",
		`{"expiry":"-1h"}`:  "expiry",
		`{"app_name": "x"`:  "JSON",
		`{"name":"` + strings.Repeat("n", 101) + `"}`: "name",
	} {
		code, got := call(t, h, admin, "POST", "/v1/tokens", body)
		if (code != 400 && code != 404) || !strings.Contains(got, field) {
			t.Errorf("POST /v1/tokens %s: %d %s, want 400 naming %s", body, code, got, field)
		}
	}
	if code, _ := call(t, h, admin, "POST", "/v1/tokens", `{"unknown_field": 1, "name": "ok"}`); code != 201 {
		t.Errorf("unknown field not ignored: %d", code)
	}
	big := `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	if code, _ := call(t, h, admin, "POST", "/v1/apps", big); code != 413 {
		t.Errorf("oversized body: %d, want 413", code)
	}

	code, body = call(t, h, admin, "GET", "/v1/tokens", "")
	if code != 200 || !strings.Contains(body, created.ID) || strings.Contains(body, "hgr_") || strings.Contains(body, `"hash"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := call(t, h, admin, "DELETE", "/v1/tokens/"+created.ID, ""); code != 200 || !strings.Contains(body, `"revoked": true`) {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, body := call(t, h, appTok, "GET", "/v1/apps/one", ""); code != 401 || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked token: %d %s", code, body)
	}
	if code, _ := call(t, h, admin, "DELETE", "/v1/tokens/000000000000", ""); code != 404 {
		t.Fatalf("revoke unknown: %d", code)
	}
	for _, tok := range []string{"", "hgr_wrong", "nothgr"} {
		if code, _ := call(t, h, tok, "GET", "/v1/apps", ""); code != 401 {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
}

func TestDecodeNamesTheField(t *testing.T) {
	_, h, tok := testServer(t)
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"a"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	for body, field := range map[string]string{
		`{"config":{"image":"x","stop_config":{"timeout":"soon"}}}`:                         `config.stop_config.timeout`,
		`{"config":{"image":"x","services":[{"internal_port":80,"autostop":"sometimes"}]}}`: `config.services[0].autostop`,
		`{"config":{"image":"x","checks":{"web":{"interval":"x"}}}}`:                        `config.checks.web.interval`,
		`{"config":{"image":"x","guest":{"cpus":"two"}}}`:                                   `config.guest.cpus`,
		`{"region":"Not A Region","config":{"image":"x"}}`:                                  `region`,
		`{"lease_ttl":-5,"config":{"image":"x"}}`:                                           `lease_ttl`,
	} {
		code, got := call(t, h, tok, "POST", "/v1/apps/a/machines", body)
		if code != 400 || !strings.Contains(got, field) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, code, got, field)
		}
	}
}
