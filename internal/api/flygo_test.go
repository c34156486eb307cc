package api

// Requests shaped exactly as fly-go's flaps client sends them (its paths,
// bodies and query strings), for the calls Hangar did not serve before.

import (
	"encoding/json"
	"strings"
	"testing"

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
