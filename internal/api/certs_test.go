package api

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestCertificatesAPI(t *testing.T) {
	s, h, tok := testServer(t)
	if code, body := call(t, h, tok, "GET", "/v1/apps/web/certificates", ""); code != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("without a manager: %d %s", code, body)
	}
	m, err := certs.New(certs.Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test", ACMEDirectory: "off"})
	if err != nil {
		t.Fatal(err)
	}
	o := s.options()
	o.Certs = m
	h = New(o).Handler()
	for _, app := range []string{"web", "api"} {
		if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"`+app+`","org_slug":"acme"}`); code != 201 {
			t.Fatalf("create %s: %d %s", app, code, body)
		}
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps/ghost/certificates", `{"hostname":"a.example.com"}`); code != 404 {
		t.Fatalf("unknown app: %d %s", code, body)
	}
	code, body := call(t, h, tok, "POST", "/v1/apps/web/certificates", `{"hostname":"WWW.example.com"}`)
	var in certs.Info
	if code != 201 || json.Unmarshal([]byte(body), &in) != nil || in.Hostname != "www.example.com" || in.App != "web" {
		t.Fatalf("add: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/v1/apps/web/certificates", `{"hostname":"*.example.com"}`, 400},
		{"POST", "/v1/apps/web/certificates", `{}`, 400},
		{"POST", "/v1/apps/api/certificates", `{"hostname":"www.example.com"}`, 409},
		{"GET", "/v1/apps/api/certificates/www.example.com", "", 404},
		{"POST", "/v1/apps/web/certificates/www.example.com/check?wait=forever", "", 400},
	} {
		if code, body := call(t, h, tok, c.method, c.path, c.body); code != c.code {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, body, c.code)
		}
	}
	code, body = call(t, h, tok, "POST", "/v1/apps/web/certificates/www.example.com/check?wait=20s", "")
	if code != 200 || json.Unmarshal([]byte(body), &in) != nil || in.ClientStatus != certs.StatusReady || !in.Configured {
		t.Fatalf("check: %d %s", code, body)
	}
	// fly-go's paths: acme adds and removes like the plain ones; custom is
	// a 400 saying so.
	if code, body := call(t, h, tok, "POST", "/v1/apps/api/certificates/acme", `{"hostname":"api.example.com"}`); code != 201 || !strings.Contains(body, `"api.example.com"`) {
		t.Fatalf("add over acme: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "DELETE", "/v1/apps/api/certificates/api.example.com/acme", ""); code != 200 {
		t.Fatalf("delete over acme: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/api/certificates/api.example.com", ""); code != 404 {
		t.Fatalf("after delete over acme: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps/api/certificates/custom", `{"hostname":"c.example.com","fullchain":"x","private_key":"y"}`); code != 400 || !strings.Contains(body, "custom") {
		t.Fatalf("import: %d %s", code, body)
	}
	code, body = call(t, h, tok, "GET", "/v1/apps/web/certificates", "")
	var list types.CertsList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Certificates) != 1 || list.Certificates[0].Serial != in.Serial {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/api/certificates", ""); code != 200 || !strings.Contains(body, `"certificates": []`) {
		t.Fatalf("empty list: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "DELETE", "/v1/apps/web/certificates/www.example.com", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := call(t, h, tok, "GET", "/v1/apps/web/certificates/www.example.com", ""); code != 404 {
		t.Fatalf("after delete: %d", code)
	}
}
