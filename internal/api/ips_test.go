package api

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestFlycastIPsAPI(t *testing.T) {
	s, h, tok := testServer(t)
	for _, app := range []string{"web", "db"} {
		if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"`+app+`","org_slug":"acme"}`); code != 201 {
			t.Fatalf("create %s: %d %s", app, code, body)
		}
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps/web/ips", `{"type":"private_v6"}`); code != 404 || !strings.Contains(body, "not available") {
		t.Fatalf("without a range: %d %s", code, body)
	}
	o := s.options()
	o.Apps = apps.New(apps.Options{Store: s.store, Org: "acme", FlycastRange: netip.MustParsePrefix("fdaa:0:1::fc:0:0/96")})
	h = New(o).Handler()
	alloc := func(app string, want int) types.IPAddress {
		t.Helper()
		code, body := call(t, h, tok, "POST", "/v1/apps/"+app+"/ips", `{"type":"private_v6"}`)
		var ip types.IPAddress
		if code != want || json.Unmarshal([]byte(body), &ip) != nil {
			t.Fatalf("allocate for %s: %d %s, want %d", app, code, body, want)
		}
		return ip
	}
	web := alloc("web", 201)
	if web.Address != "fdaa:0:1::fc:0:1" || web.Type != "private_v6" || web.App != "web" || web.Network != "default" {
		t.Fatalf("web: %+v", web)
	}
	if again := alloc("web", 200); again != web {
		t.Fatalf("second allocation: %+v, want %+v", again, web)
	}
	if db := alloc("db", 201); db.Address != "fdaa:0:1::fc:0:2" {
		t.Fatalf("db: %+v", db)
	}
	code, body := call(t, h, tok, "GET", "/v1/apps/web/ips", "")
	var list []types.IPAddress
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0] != web {
		t.Fatalf("list: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"POST", "/v1/apps/web/ips", `{"type":"v6"}`, 400, "private_v6"},
		{"POST", "/v1/apps/web/ips", `{"type":"bogus"}`, 400, "want private_v6"},
		{"POST", "/v1/apps/web/ips", `{"type":"private_v6","network":"other"}`, 400, "leave the network out"},
		{"POST", "/v1/apps/web/ips", `{"type":"private_v6","org_slug":"elsewhere"}`, 400, "org"},
		{"POST", "/v1/apps/ghost/ips", `{"type":"private_v6"}`, 404, "not found"},
		{"GET", "/v1/apps/ghost/ips", "", 404, "not found"},
		{"DELETE", "/v1/apps/web/ips/fdaa:0:1::fc:0:2", "", 404, "no IP address"},
		{"DELETE", "/v1/apps/web/ips/nonsense", "", 400, "not an IP address"},
	} {
		if code, body := call(t, h, tok, c.method, c.path, c.body); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("%s %s %s: %d %s, want %d saying %q", c.method, c.path, c.body, code, body, c.code, c.says)
		}
	}
	if code, body := call(t, h, tok, "DELETE", "/v1/apps/web/ips/"+web.Address, ""); code != 204 {
		t.Fatalf("release: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/web/ips", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("list after release: %d %s", code, body)
	}
	// The freed number is used again.
	if again := alloc("web", 201); again.Address != web.Address {
		t.Fatalf("reallocated %s, want the freed %s", again.Address, web.Address)
	}
}
