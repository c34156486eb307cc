package api

// Requests shaped exactly as fly-go's flaps client sends them (its paths,
// bodies and query strings), for the calls Hangar did not serve before.

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestCreateAppWithFlyGoBody(t *testing.T) {
	_, h, tok := testServer(t)
	// flaps.CreateApp: POST /apps?wait=true with name, org_slug, network, app_role_id.
	code, body := call(t, h, tok, "POST", "/v1/apps?wait=true", `{"name":"flygo","org_slug":"personal","network":"","app_role_id":""}`)
	var app types.App
	if code != 201 || json.Unmarshal([]byte(body), &app) != nil || app.Name != "flygo" {
		t.Fatalf("create with name: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"classic","org_slug":"acme"}`); code != 201 {
		t.Fatalf("create with app_name: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"one","name":"two","org_slug":"acme"}`); code != 400 || !strings.Contains(body, "differ") {
		t.Fatalf("two different names: %d %s", code, body)
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"org_slug":"acme"}`); code != 400 {
		t.Fatalf("no name: %d %s", code, body)
	}
}

func TestVolumeUpdateTakesPUT(t *testing.T) {
	_, h, tok := testServer(t)
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"app_name":"web","org_slug":"acme"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	// flaps.UpdateVolume sends PUT; without a volume manager the route
	// answers its clear 404 (the method was a 405 before). e2e.TestVolumes
	// updates a real volume this way.
	code, body := call(t, h, tok, "PUT", "/v1/apps/web/volumes/vol_x", `{"snapshot_retention":7,"auto_backup_enabled":null}`)
	if code != 404 || !strings.Contains(body, "not configured") {
		t.Fatalf("PUT volume: %d %s", code, body)
	}
}

func TestIPAssignments(t *testing.T) {
	s, _, tok := testServer(t)
	o := s.options()
	o.Apps = apps.New(apps.Options{Store: s.store, Org: "acme", FlycastRange: netip.MustParsePrefix("fdaa:0:1::fc:0:0/96")})
	h := New(o).Handler()
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"name":"web","org_slug":"acme"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	list := func() types.IPAssignmentsList {
		t.Helper()
		code, body := call(t, h, tok, "GET", "/v1/apps/web/ip_assignments", "")
		var l types.IPAssignmentsList
		if code != 200 || json.Unmarshal([]byte(body), &l) != nil || l.IPs == nil {
			t.Fatalf("list: %d %s", code, body)
		}
		return l
	}
	if l := list(); len(l.IPs) != 0 {
		t.Fatalf("before any: %+v", l)
	}
	// flaps.AssignIP sends every field, empty ones included.
	code, body := call(t, h, tok, "POST", "/v1/apps/web/ip_assignments", `{"type":"private_v6","region":"","org_slug":"acme","network":"","service_name":""}`)
	var ip types.IPAssignment
	if code != 201 || json.Unmarshal([]byte(body), &ip) != nil || ip.IP != "fdaa:0:1::fc:0:1" || ip.CreatedAt == "" {
		t.Fatalf("assign: %d %s", code, body)
	}
	if _, err := time.Parse(time.RFC3339, ip.CreatedAt); err != nil {
		t.Fatalf("created_at %q is not what fly-go parses: %v", ip.CreatedAt, err)
	}
	if code, body := call(t, h, tok, "POST", "/v1/apps/web/ip_assignments", `{"type":"private_v6"}`); code != 200 || !strings.Contains(body, ip.IP) {
		t.Fatalf("assign again: %d %s", code, body)
	}
	if l := list(); len(l.IPs) != 1 || l.IPs[0] != ip {
		t.Fatalf("list: %+v, want %+v", l, ip)
	}
	for _, c := range []struct {
		body string
		says string
	}{
		{`{"type":"v6"}`, "private_v6"},
		{`{"type":"shared_v4"}`, "private_v6"},
		{`{"type":"private_v6","service_name":"svc"}`, "service_name"},
		{`{"type":"private_v6","region":"nowhere"}`, "region"},
	} {
		if code, body := call(t, h, tok, "POST", "/v1/apps/web/ip_assignments", c.body); code != 400 || !strings.Contains(body, c.says) {
			t.Errorf("assign %s: %d %s, want 400 naming %q", c.body, code, body, c.says)
		}
	}
	if code, body := call(t, h, tok, "DELETE", "/v1/apps/web/ip_assignments/"+ip.IP, ""); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if l := list(); len(l.IPs) != 0 {
		t.Fatalf("after delete: %+v", l)
	}
	if code, body := call(t, h, tok, "GET", "/v1/apps/ghost/ip_assignments", ""); code != 404 {
		t.Fatalf("unknown app: %d %s", code, body)
	}
}

func TestPlatformRegions(t *testing.T) {
	_, h, tok := testServer(t)
	code, body := call(t, h, tok, "GET", "/v1/platform/regions", "")
	// fly-go reads {"Regions": [{code, name, …}], "Nearest"}.
	var got struct {
		Regions []struct {
			Code  string   `json:"code"`
			Name  string   `json:"name"`
			Hosts []string `json:"hosts"`
		} `json:"Regions"`
		Nearest string `json:"Nearest"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("regions: %d %s", code, body)
	}
	if got.Nearest != "tst" || len(got.Regions) != 1 || got.Regions[0].Code != "tst" || len(got.Regions[0].Hosts) != 1 || got.Regions[0].Hosts[0] == "" {
		t.Fatalf("regions: %s", body)
	}
}

func TestSecretKeysAreRefused(t *testing.T) {
	_, h, tok := testServer(t)
	if code, body := call(t, h, tok, "POST", "/v1/apps", `{"name":"web","org_slug":"acme"}`); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	// The paths fly-go's secret key calls use.
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/apps/web/secretkeys"}, {"GET", "/v1/apps/web/secretkeys/k"}, {"POST", "/v1/apps/web/secretkeys/k"},
		{"POST", "/v1/apps/web/secretkeys/k/generate"}, {"POST", "/v1/apps/web/secretkeys/k/encrypt"}, {"DELETE", "/v1/apps/web/secretkeys/k"},
	} {
		if code, body := call(t, h, tok, c.method, c.path, `{}`); code != 400 || !strings.Contains(body, "secret keys") {
			t.Errorf("%s %s: %d %s, want a 400 naming secret keys", c.method, c.path, code, body)
		}
	}
}

// TestUnsupportedFlyCallsNameTheFeature: fly-go's placements and Managed
// Postgres calls get a 400 that says what is not supported (before, the
// 404 of an unknown path).
func TestUnsupportedFlyCallsNameTheFeature(t *testing.T) {
	_, h, tok := testServer(t)
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/v1/platform/placements", "placements"},
		{"POST", "/v1/postgres", "Managed Postgres"},
		{"GET", "/v1/postgres/c1", "Managed Postgres"},
		{"GET", "/v1/postgres/c1/users/u/credentials", "Managed Postgres"},
	} {
		if code, body := call(t, h, tok, c.method, c.path, `{}`); code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s, want a 400 naming %s", c.method, c.path, code, body, c.want)
		}
	}
}

// TestExecContainerIsRefused: fly-go's exec may name a container of a
// multi-container machine; Hangar runs one, so the name is a 400 naming
// it, not ignored (before, the command ran in the machine regardless).
func TestExecContainerIsRefused(t *testing.T) {
	_, h, tok := testServer(t)
	code, body := call(t, h, tok, "POST", "/v1/apps/web/machines/m1/exec", `{"cmd":"ls","container":"sidecar"}`)
	if code != 400 || !strings.Contains(body, `container \"sidecar\"`) {
		t.Fatalf("exec in a named container: %d %s, want a 400 naming it", code, body)
	}
}
