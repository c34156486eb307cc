package api

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestSecretsEndpoints(t *testing.T) {
	s, h, tok := testServer(t)
	st, err := secrets.Open(s.store, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := s.options()
	o.Secrets = st
	h = New(o).Handler()
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"web","org_slug":"acme"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	const val = "value-that-must-not-come-back-3f9a"
	code, body := call(t, h, tok, "POST", "/v1/apps/web/secrets", `{"values":{"DB":"`+val+`","OTHER":"x"}}`)
	if code != 200 || strings.Contains(body, val) {
		t.Fatalf("update: %d %s", code, body)
	}
	var list types.SecretsList
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.Version != 1 || len(list.Secrets) != 2 || list.Secrets[0].Status != secrets.StatusStaged {
		t.Fatalf("list: %+v %v", list, err)
	}
	code, body = call(t, h, tok, "POST", "/v1/apps/web/secrets/API_KEY", `{"value":"`+val+`2"}`)
	if code != 200 || strings.Contains(body, val) || !strings.Contains(body, `"name": "API_KEY"`) {
		t.Fatalf("set one: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "DELETE", "/v1/apps/web/secrets/OTHER", ""); code != 200 || !strings.Contains(body, `"version": 3`) {
		t.Fatalf("unset: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"DELETE", "/v1/apps/web/secrets/OTHER", "", 404},
		{"POST", "/v1/apps/web/secrets", `{"values":{"1BAD":"x"}}`, 400},
		{"POST", "/v1/apps/web/secrets", `{"values":{}}`, 400},
		{"POST", "/v1/apps/web/secrets", `{"values":`, 400},
		{"POST", "/v1/apps/web/secrets/OK", `{}`, 400},
		{"POST", "/v1/apps/web/secrets", `{"values":{"BIG":"` + strings.Repeat("a", secrets.MaxValueBytes+1) + `"}}`, 400},
		{"GET", "/v1/apps/web/secrets?show_secrets=true", "", 400},
		{"GET", "/v1/apps/nope/secrets", "", 404},
		{"POST", "/v1/apps/nope/secrets", `{"values":{"A":"b"}}`, 404},
	} {
		if code, body := call(t, h, tok, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}
	// One secret by name (fly-go's GetAppSecrets): metadata, never the value.
	code, body = call(t, h, tok, "GET", "/v1/apps/web/secrets/DB", "")
	var one types.Secret
	if code != 200 || strings.Contains(body, val) || json.Unmarshal([]byte(body), &one) != nil || one.Name != "DB" || one.Digest == "" {
		t.Fatalf("get one: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/web/secrets/OTHER", ""); code != 404 || !strings.Contains(body, "no secret OTHER") {
		t.Fatalf("get an unset one: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/web/secrets/DB?show_secrets=true", ""); code != 400 || strings.Contains(body, val) {
		t.Fatalf("get one with show_secrets: %d %s", code, body)
	}
	code, body = call(t, h, tok, "GET", "/v1/apps/web/secrets", "")
	if code != 200 || strings.Contains(body, val) || !strings.Contains(body, `"DB"`) || strings.Contains(body, `"OTHER"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	// Volumes are not configured on this server: a clear 404.
	if code, body := call(t, h, tok, "GET", "/v1/apps/web/volumes", ""); code != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("volumes without a manager: %d %s", code, body)
	}
}
