package e2e

// The Machines API against a real daemon: the lifecycle validated against
// Fly.io's own OpenAPI description, lease contention, wait timeouts, the
// auth matrix, and the machine operations (exec, ps, signal, cordon,
// metadata, suspend, restart).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// flyDocPath is Fly's published OpenAPI description, outside the repo:
// ../shared/reference/ beside the clone (never copied in).
func flyDocPath() string {
	return filepath.Join(harness.RepoRoot(), "..", "shared", "reference", "fly-machines-openapi.yaml")
}

// loadFlyDoc loads Fly's document for base (the daemon's API URL), with
// the documented patches where Fly's document disagrees with Fly's real
// API (see docs/api.md, "Where Fly's OpenAPI description disagrees").
func loadFlyDoc(t *testing.T, base string) (*openapi3.T, routers.Router) {
	t.Helper()
	path := flyDocPath()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("Fly's OpenAPI description is not at %s (CI keeps ../shared beside the clone); contract test skipped: %v", path, err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	// ListApp.network: "type: object" in the document; Fly's API (and
	// fly-go) use the network's name, a string.
	if s := doc.Components.Schemas["ListApp"]; s != nil && s.Value.Properties["network"] != nil {
		s.Value.Properties["network"] = openapi3.NewStringSchema().NewRef()
	}
	doc.Servers = openapi3.Servers{{URL: base + "/v1"}}
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("Fly's document does not validate: %v", err)
	}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// flyClient is a thin client of the Machines API whose every request and
// response is checked against Fly's document (when it has one).
type flyClient struct {
	t      *testing.T
	base   string
	token  string
	router routers.Router // nil: no validation
}

type reply struct {
	code int
	body []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (c *flyClient) call(method, path string, body any, header map[string]string) reply {
	t := c.t
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, c.base+"/v1"+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var in *openapi3filter.RequestValidationInput
	if c.router != nil {
		route, params, err := c.router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not an operation of Fly's document: %v", method, path, err)
		} else {
			in = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s: request does not match Fly's document: %v", method, path, err)
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if in != nil {
		if resp.StatusCode/100 == 2 {
			rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
				Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			rin.SetBodyBytes(out)
			if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
				t.Errorf("%s %s: response %d does not match Fly's document: %v\n%s", method, path, resp.StatusCode, err, out)
			}
		} else {
			// Error statuses Fly's document leaves out still carry its
			// ErrorResponse shape.
			var e types.ErrorResponse
			if json.Unmarshal(out, &e) != nil || e.Error == "" {
				t.Errorf("%s %s: error %d without an ErrorResponse body: %s", method, path, resp.StatusCode, out)
			}
		}
	}
	return reply{resp.StatusCode, out}
}

func (c *flyClient) must(code int, method, path string, body any, header map[string]string) reply {
	c.t.Helper()
	r := c.call(method, path, body, header)
	if r.code != code {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, code)
	}
	return r
}

type leaseReply struct {
	Status string `json:"status"`
	Data   struct {
		Nonce     string `json:"nonce"`
		ExpiresAt int64  `json:"expires_at"`
		Owner     string `json:"owner"`
	} `json:"data"`
	Nonce string `json:"nonce"`
}

// TestMachinesAPIContract drives a machine's whole life through the API,
// every request and response validated against Fly's OpenAPI description.
func TestMachinesAPIContract(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := os.Stat(flyDocPath()); err != nil {
		t.Skipf("Fly's OpenAPI description is not at %s (CI keeps ../shared beside the clone); contract test skipped", flyDocPath())
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	_, router := loadFlyDoc(t, d.API)
	c := &flyClient{t: t, base: d.API, token: d.Token, router: router}

	c.must(201, "POST", "/apps", map[string]any{"app_name": "contract", "org_slug": "personal", "network": "contract-net"}, nil)
	var apps struct {
		TotalApps int `json:"total_apps"`
		Apps      []struct {
			Name    string `json:"name"`
			Network string `json:"network"`
		} `json:"apps"`
	}
	c.must(200, "GET", "/apps?org_slug=personal", nil, nil).decode(t, &apps)
	if apps.TotalApps != 1 || apps.Apps[0].Name != "contract" || apps.Apps[0].Network != "contract-net" {
		t.Fatalf("apps = %+v", apps)
	}
	var app types.App
	c.must(200, "GET", "/apps/contract", nil, nil).decode(t, &app)
	if app.Name != "contract" || app.Organization.Slug == "" {
		t.Fatalf("app = %+v", app)
	}

	cfg := map[string]any{
		"image": ref,
		"env":   map[string]string{"PORT": "8080", "APP_VERSION": "1"},
		"guest": map[string]any{"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
		"services": []any{map[string]any{"protocol": "tcp", "internal_port": 8080,
			"ports":  []any{map[string]any{"port": 80, "handlers": []string{"http"}}},
			"checks": []any{map[string]any{"type": "http", "path": "/healthz", "interval": "1s", "timeout": "1s"}}}},
		"restart":  map[string]any{"policy": "on-failure", "max_retries": 3},
		"metadata": map[string]string{"role": "web"},
	}
	var m types.Machine
	c.must(200, "POST", "/apps/contract/machines", map[string]any{"name": "web-1", "region": "tst", "config": cfg}, nil).decode(t, &m)
	if len(m.ID) != 14 || m.Name != "web-1" || m.Region != "tst" || m.InstanceID == "" || m.PrivateIP == "" || m.ImageRef.Digest == "" || m.CreatedAt == "" {
		t.Fatalf("created machine = %+v", m)
	}
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)
	c.must(200, "GET", "/apps/contract/machines/"+m.ID, nil, nil).decode(t, &m)
	if m.State != types.StateStarted {
		t.Fatalf("state after wait = %s", m.State)
	}

	var lease leaseReply
	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/lease", map[string]any{"ttl": 120, "description": "contract test"}, nil).decode(t, &lease)
	if lease.Data.Nonce == "" || lease.Nonce != lease.Data.Nonce || lease.Status != "success" || lease.Data.ExpiresAt < time.Now().Add(100*time.Second).Unix() {
		t.Fatalf("lease = %+v", lease)
	}
	nonce := map[string]string{"fly-machine-lease-nonce": lease.Data.Nonce}
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/lease", nil, nil)

	// Update under the lease: a new version, the old one replaced.
	cfg["env"] = map[string]string{"PORT": "8080", "APP_VERSION": "2"}
	if r := c.call("POST", "/apps/contract/machines/"+m.ID, map[string]any{"config": cfg}, nil); r.code != http.StatusConflict {
		t.Fatalf("update without the nonce: %d %s, want 409", r.code, r.body)
	}
	var updated types.Machine
	c.must(200, "POST", "/apps/contract/machines/"+m.ID, map[string]any{"config": cfg, "current_version": m.InstanceID}, nonce).decode(t, &updated)
	if updated.InstanceID == m.InstanceID || updated.Config.Env["APP_VERSION"] != "2" || updated.Nonce != lease.Data.Nonce {
		t.Fatalf("updated = %+v (was instance %s)", updated, m.InstanceID)
	}
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=started&timeout=30&instance_id="+updated.InstanceID, nil, nil)
	var versions []struct {
		Version string `json:"version"`
	}
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/versions", nil, nil).decode(t, &versions)
	if len(versions) != 2 || versions[0].Version != updated.InstanceID || versions[1].Version != m.InstanceID {
		t.Fatalf("versions = %+v", versions)
	}

	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/stop", map[string]any{"signal": "SIGTERM", "timeout": "10s"}, nonce)
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=stopped&timeout=30&instance_id="+updated.InstanceID, nil, nil)
	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/start", nil, nonce)
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)

	// The other operations Fly's document describes (exec is left out: the
	// document says its answer is a JSON string; see docs/api.md).
	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/cordon", nil, nonce)
	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/uncordon", nil, nonce)
	c.must(204, "POST", "/apps/contract/machines/"+m.ID+"/metadata/owner", map[string]string{"value": "contract"}, nil)
	var md map[string]string
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/metadata", nil, nil).decode(t, &md)
	if md["owner"] != "contract" || md["role"] != "web" {
		t.Fatalf("metadata = %v", md)
	}
	c.must(204, "DELETE", "/apps/contract/machines/"+m.ID+"/metadata/owner", nil, nil)
	var ps []map[string]any
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/ps?sort_by=rss&order=desc", nil, nil).decode(t, &ps)
	if len(ps) == 0 {
		t.Fatal("ps: no processes")
	}

	var events []types.MachineEvent
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/events", nil, nil).decode(t, &events)
	var seen []string
	for _, e := range events {
		seen = append(seen, e.Type)
	}
	if got := strings.Join(seen, ","); !strings.HasPrefix(got, "start,stop,start,update") || !strings.HasSuffix(got, "launch") {
		t.Fatalf("events = %s", got)
	}
	var listed []types.Machine
	c.must(200, "GET", "/apps/contract/machines?region=tst", nil, nil).decode(t, &listed)
	if len(listed) != 1 || listed[0].ID != m.ID {
		t.Fatalf("list = %+v", listed)
	}

	c.must(200, "POST", "/apps/contract/machines/"+m.ID+"/restart?timeout=10s", nil, nonce)
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=started&timeout=30", nil, nil)
	c.must(200, "DELETE", "/apps/contract/machines/"+m.ID+"/lease", nil, nonce)
	c.must(200, "DELETE", "/apps/contract/machines/"+m.ID+"?force=true", nil, nil)
	c.must(200, "GET", "/apps/contract/machines/"+m.ID+"/wait?state=destroyed&timeout=10", nil, nil)
	c.must(200, "GET", "/apps/contract/machines", nil, nil).decode(t, &listed)
	if len(listed) != 0 {
		t.Fatalf("after destroy: %+v", listed)
	}
	c.must(200, "GET", "/apps/contract/machines?include_deleted=true", nil, nil).decode(t, &listed)
	if len(listed) != 1 || listed[0].State != types.StateDestroyed {
		t.Fatalf("include_deleted: %+v", listed)
	}
	var gone types.Machine
	c.must(200, "GET", "/apps/contract/machines/"+m.ID, nil, nil).decode(t, &gone)
	if gone.ID != m.ID || gone.State != types.StateDestroyed {
		t.Fatalf("GET of the destroyed machine: %+v", gone)
	}
	c.must(202, "DELETE", "/apps/contract", nil, nil)
	if r := c.call("GET", "/apps/contract", nil, nil); r.code != 404 {
		t.Fatalf("deleted app: %d", r.code)
	}
}

// newOrgToken creates another org token through the API.
func newToken(t *testing.T, d *harness.Daemon, body string) (token, id string) {
	t.Helper()
	code, out := d.Call("POST", "/v1/tokens", body)
	if code != 201 {
		t.Fatalf("create token %s: %d %s", body, code, out)
	}
	var res struct {
		Token string `json:"token"`
		ID    string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	return res.Token, res.ID
}

// TestLeasesWaitAndAuth: two clients race for a lease, waits time out with
// 408, and the auth matrix.
func TestLeasesWaitAndAuth(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	for _, app := range []string{"lease", "other"} {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			t.Fatalf("create app: %d %s", code, body)
		}
	}
	// A created machine that is never launched: leases and waits need no
	// running task.
	cfg := &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
	code, body := d.Call("POST", "/v1/apps/lease/machines", types.CreateMachineRequest{Config: cfg, SkipLaunch: true})
	if code != 200 {
		t.Fatalf("create machine: %d %s", code, body)
	}
	var m types.Machine
	_ = json.Unmarshal([]byte(body), &m)
	if m.State != types.StateCreated {
		t.Fatalf("skip_launch machine is %s", m.State)
	}
	base := "/apps/lease/machines/" + m.ID

	t.Run("lease contention", func(t *testing.T) {
		other, _ := newToken(t, d, `{"name":"bob"}`)
		clients := []*flyClient{{t: t, base: d.API, token: d.Token}, {t: t, base: d.API, token: other}}
		replies := make([]reply, 2)
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i] = c.call("POST", base+"/lease?ttl=60", nil, nil)
			}()
		}
		wg.Wait()
		winner, loser := 0, 1
		if replies[0].code != 200 {
			winner, loser = 1, 0
		}
		if replies[winner].code != 200 || replies[loser].code != http.StatusConflict {
			t.Fatalf("lease race: %d %s / %d %s, want one 200 and one 409", replies[0].code, replies[0].body, replies[1].code, replies[1].body)
		}
		var l leaseReply
		replies[winner].decode(t, &l)
		nonce := map[string]string{"fly-machine-lease-nonce": l.Data.Nonce}
		wrong := map[string]string{"fly-machine-lease-nonce": "0123456789abcdef0123456789abcdef"}
		w, lo := clients[winner], clients[loser]
		for _, h := range []map[string]string{nil, wrong} {
			if r := lo.call("POST", base+"/lease", map[string]any{"ttl": 30}, nil); r.code != 409 {
				t.Errorf("second acquire: %d %s", r.code, r.body)
			}
			if r := lo.call("POST", base, map[string]any{"config": cfg}, h); r.code != 409 || !strings.Contains(string(r.body), "lease currently held by") {
				t.Errorf("update by the other client (%v): %d %s", h, r.code, r.body)
			}
			if r := lo.call("DELETE", base+"?force=true", nil, h); r.code != 409 {
				t.Errorf("destroy by the other client: %d %s", r.code, r.body)
			}
			if r := lo.call("POST", base+"/cordon", nil, h); r.code != 409 {
				t.Errorf("cordon by the other client: %d %s", r.code, r.body)
			}
			if r := lo.call("DELETE", base+"/lease", nil, h); r.code != 409 {
				t.Errorf("release by the other client: %d %s", r.code, r.body)
			}
		}
		var up types.Machine
		w.must(200, "POST", base, map[string]any{"config": cfg, "skip_launch": true}, nonce).decode(t, &up)
		if up.InstanceID == m.InstanceID {
			t.Errorf("update under the lease kept the instance id")
		}
		// Without skip_launch too, a machine that was not running is left
		// as it was (Fly's hosts do so); a start boots the new version.
		var kept types.Machine
		w.must(200, "POST", base, map[string]any{"config": cfg}, nonce).decode(t, &kept)
		if kept.State == types.StateStarted {
			t.Errorf("update without skip_launch booted a machine that was %s", up.State)
		}
		w.must(200, "POST", base+"/start", nil, nonce)
		w.must(200, "GET", base+"/wait?state=started&timeout=30", nil, nil)
		w.must(200, "POST", base+"/stop", nil, nonce)
		// settled (flyctl's `machine wait` default) names the state reached.
		var settled struct {
			OK    bool   `json:"ok"`
			State string `json:"state"`
		}
		w.must(200, "GET", base+"/wait?state=settled&timeout=30", nil, nil).decode(t, &settled)
		if !settled.OK || settled.State != types.StateStopped {
			t.Errorf("wait settled after a stop: %+v", settled)
		}
		// The old version is replaced: waiting for it to be replaced
		// answers at once; waiting for it to start is a conflict.
		w.must(200, "GET", base+"/wait?state=replaced&timeout=5&instance_id="+m.InstanceID, nil, nil)
		if r := w.call("GET", base+"/wait?state=started&timeout=5&instance_id="+m.InstanceID, nil, nil); r.code != 409 || !strings.Contains(string(r.body), "replaced") {
			t.Errorf("wait for a replaced instance to start: %d %s, want 409", r.code, r.body)
		}
		// Refresh with the nonce extends; release frees it for the other.
		var refreshed leaseReply
		w.must(200, "POST", base+"/lease?ttl=300", nil, nonce).decode(t, &refreshed)
		if refreshed.Data.Nonce != l.Data.Nonce || refreshed.Data.ExpiresAt < time.Now().Add(290*time.Second).Unix() {
			t.Errorf("refresh = %+v", refreshed)
		}
		w.must(200, "DELETE", base+"/lease", nil, nonce)
		// flyctl's `machine leases view|clear` match " lease not found".
		if r := w.call("GET", base+"/lease", nil, nil); r.code != 404 || !strings.Contains(string(r.body), " lease not found") {
			t.Errorf("lease of a machine without one: %d %s", r.code, r.body)
		}
		if r := w.call("GET", "/apps/lease/machines/0123456789abcd", nil, nil); r.code != 404 || !strings.Contains(string(r.body), "machine not found") {
			t.Errorf("unknown machine: %d %s", r.code, r.body)
		}
		lo.must(200, "POST", base+"/lease", map[string]any{"ttl": 1, "description": "short"}, nil)
		// An expired lease blocks nobody.
		harness.Poll(t, "the 1s lease expires", 5*time.Second, func() (bool, string) {
			r := w.call("POST", base+"/metadata/k", map[string]string{"value": "v"}, nil)
			r2 := w.call("POST", base+"/uncordon", nil, nil)
			return r.code == 204 && r2.code == 200, fmt.Sprint(r.code, r2.code, string(r2.body))
		})
	})

	t.Run("wait timeouts", func(t *testing.T) {
		c := &flyClient{t: t, base: d.API, token: d.Token}
		start := time.Now()
		r := c.call("GET", base+"/wait?state=started&timeout=1", nil, nil)
		if r.code != http.StatusRequestTimeout || time.Since(start) < 900*time.Millisecond || time.Since(start) > 5*time.Second {
			t.Fatalf("wait for a machine that never starts: %d %s after %v, want 408 after ~1s", r.code, r.body, time.Since(start))
		}
		for _, q := range []string{"timeout=0", "timeout=61", "timeout=abc", "state=bogus"} {
			if r := c.call("GET", base+"/wait?"+q, nil, nil); r.code != 400 || !strings.Contains(string(r.body), strings.Split(q, "=")[0]) {
				t.Errorf("wait?%s: %d %s, want 400 naming the parameter", q, r.code, r.body)
			}
		}
		// The state reached in time answers at once.
		start = time.Now()
		c.must(200, "GET", base+"/wait?state=created&state=stopped&state=started&timeout=5", nil, nil)
		if time.Since(start) > time.Second {
			t.Errorf("wait for the current state took %v", time.Since(start))
		}
	})

	t.Run("auth matrix", func(t *testing.T) {
		appTok, _ := newToken(t, d, `{"app":"lease","name":"deploy-lease"}`)
		revoked, revokedID := newToken(t, d, `{"name":"to-revoke"}`)
		expiring, _ := newToken(t, d, `{"name":"short","expiry":"2s"}`)
		get := func(token, path string) int {
			req, _ := http.NewRequest("GET", d.API+path, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if c := get(revoked, "/v1/apps/lease"); c != 200 {
			t.Fatalf("token before revoking: %d", c)
		}
		if code, body := d.Call("DELETE", "/v1/tokens/"+revokedID, nil); code != 200 {
			t.Fatalf("revoke: %d %s", code, body)
		}
		cases := []struct {
			name, token, path string
			want              int
		}{
			{"no token", "", "/v1/apps/lease", 401},
			{"wrong token", "hgr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/v1/apps/lease", 401},
			{"not a hangar token", "fo1_something", "/v1/apps/lease", 401},
			{"revoked at once", revoked, "/v1/apps/lease", 401},
			{"app token on its app", appTok, "/v1/apps/lease/machines", 200},
			{"app token on another app", appTok, "/v1/apps/other", 403},
			{"app token on another app's machines", appTok, "/v1/apps/other/machines", 403},
			{"app token managing tokens", appTok, "/v1/tokens", 403},
			{"org token", d.Token, "/v1/apps/other", 200},
		}
		for _, c := range cases {
			if got := get(c.token, c.path); got != c.want {
				t.Errorf("%s: GET %s = %d, want %d", c.name, c.path, got, c.want)
			}
		}
		var apps struct {
			Apps []types.App `json:"apps"`
		}
		req, _ := http.NewRequest("GET", d.API+"/v1/apps", nil)
		req.Header.Set("Authorization", "Bearer "+appTok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&apps)
		resp.Body.Close()
		if len(apps.Apps) != 1 || apps.Apps[0].Name != "lease" {
			t.Errorf("app token lists %+v, want only its app", apps.Apps)
		}
		if c := get(expiring, "/v1/apps/lease"); c != 200 {
			t.Fatalf("expiring token before expiry: %d", c)
		}
		harness.Poll(t, "the 2s token expires", 6*time.Second, func() (bool, string) {
			c := get(expiring, "/v1/apps/lease")
			return c == 401, fmt.Sprint(c)
		})

		// The CLI: create an app token, list, revoke.
		out, err := d.Hangar("tokens", "create", "--app", "other", "--expiry", "1h", "--name", "cli", "--json")
		if err != nil {
			t.Fatalf("tokens create: %v\n%s", err, out)
		}
		var created struct {
			Token, ID, Scope, App string
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &created); err != nil || created.Scope != "app" || created.App != "other" {
			t.Fatalf("tokens create --json: %v %s", err, out)
		}
		if c := get(created.Token, "/v1/apps/other"); c != 200 {
			t.Fatalf("CLI-made token: %d", c)
		}
		list, err := d.Hangar("tokens", "list")
		if err != nil || !strings.Contains(list, created.ID) || !strings.Contains(list, "revoked") || strings.Contains(list, "hgr_") {
			t.Fatalf("tokens list: %v\n%s", err, list)
		}
		if out, err := d.Hangar("tokens", "revoke", created.ID); err != nil || !strings.Contains(out, created.ID) {
			t.Fatalf("tokens revoke: %v\n%s", err, out)
		}
		if c := get(created.Token, "/v1/apps/other"); c != 401 {
			t.Fatalf("CLI-revoked token: %d", c)
		}
		// flyctl's spelling.
		out, err = d.Hangar("tokens", "create", "deploy", "-a", "lease", "--json")
		if err != nil || !strings.Contains(out, `"scope": "app"`) || !strings.Contains(out, `"app": "lease"`) {
			t.Fatalf("tokens create deploy: %v\n%s", err, out)
		}
		if out, err := d.Hangar("tokens", "create", "deploy"); err == nil || !strings.Contains(out, "-a APP") {
			t.Fatalf("tokens create deploy without an app should fail with a hint: %v\n%s", err, out)
		}
		if out, err := d.Hangar("tokens", "revoke", "nosuchtoken0"); err == nil || !strings.Contains(out, "tokens list") {
			t.Fatalf("revoking an unknown token should fail with a hint: %v\n%s", err, out)
		}
	})
}

// TestMachineOperations: exec, ps, signal, cordon, metadata, suspend and
// restart on a running machine.
func TestMachineOperations(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "ops"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	cfg := &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}, Metadata: map[string]string{"tier": "web"},
		Restart:  &types.MachineRestart{Policy: types.RestartNo},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond)}}}}}
	c := &flyClient{t: t, base: d.API, token: d.Token}
	var m types.Machine
	// Created with skip_service_registration: running but cordoned.
	c.must(200, "POST", "/apps/ops/machines", types.CreateMachineRequest{Config: cfg, SkipServiceRegistration: true}, nil).decode(t, &m)
	base := "/apps/ops/machines/" + m.ID
	c.must(200, "GET", base+"/wait?state=started&timeout=20", nil, nil)
	harness.Poll(t, "checks pass", 10*time.Second, func() (bool, string) {
		var cur types.Machine
		_ = d.Get("/v1"+base, &cur)
		return len(cur.Checks) == 1 && cur.Checks[0].Status == types.CheckPassing, fmt.Sprint(cur.Checks)
	})
	if code, body, _ := d.ViaProxy("ops", "/"); code != 503 {
		t.Fatalf("cordoned (skip_service_registration) machine got traffic: %d %s", code, body)
	}
	c.must(200, "POST", base+"/uncordon", nil, nil)
	harness.Poll(t, "uncordoned machine serves", 10*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("ops", "/")
		return code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
	})
	c.must(200, "POST", base+"/cordon", nil, nil)
	harness.Poll(t, "cordoned machine leaves rotation", 10*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("ops", "/")
		return code == 503, fmt.Sprint(code, body, err)
	})
	c.must(200, "POST", base+"/uncordon", nil, nil)

	t.Run("exec", func(t *testing.T) {
		var res struct {
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
			Stderr   string `json:"stderr"`
		}
		c.must(200, "POST", base+"/exec", map[string]any{"command": []string{"/app", "cat", "to", "stderr"}, "stdin": "hello from stdin", "timeout": 10}, nil).decode(t, &res)
		if res.ExitCode != 2 || res.Stdout != "hello from stdin" || res.Stderr != "to stderr" {
			t.Fatalf("exec = %+v", res)
		}
		c.must(200, "POST", base+"/exec", map[string]any{"cmd": "/app cat 'one arg'"}, nil).decode(t, &res)
		if res.ExitCode != 1 || res.Stderr != "one arg" {
			t.Fatalf("exec cmd string = %+v", res)
		}
		start := time.Now()
		if r := c.call("POST", base+"/exec", map[string]any{"command": []string{"/app", "sleep", "30s"}, "timeout": 1}, nil); r.code != http.StatusRequestTimeout || time.Since(start) > 10*time.Second {
			t.Errorf("exec over its timeout: %d %s after %v, want 408", r.code, r.body, time.Since(start))
		}
		for _, body := range []string{`{}`, `{"command": "ls"}`, `{"command": ["x"], "timeout": -1}`} {
			if r := c.call("POST", base+"/exec", json.RawMessage(body), nil); r.code != 400 {
				t.Errorf("exec %s: %d %s", body, r.code, r.body)
			}
		}
	})

	t.Run("ps", func(t *testing.T) {
		var ps []struct {
			Pid           int                               `json:"pid"`
			Command       string                            `json:"command"`
			Directory     string                            `json:"directory"`
			RSS           uint64                            `json:"rss"`
			ListenSockets []struct{ Proto, Address string } `json:"listen_sockets"`
		}
		// The timed-out exec of the subtest before is killed in the
		// background; its processes may still be going for an instant. Read
		// the list (ascending, then descending) until two reads agree.
		var desc []struct{ Pid int }
		harness.Poll(t, "a settled process list", 10*time.Second, func() (bool, string) {
			ps, desc = nil, nil
			c.must(200, "GET", base+"/ps?sort_by=pid&order=asc", nil, nil).decode(t, &ps)
			c.must(200, "GET", base+"/ps?sort_by=pid&order=desc", nil, nil).decode(t, &desc)
			for _, p := range ps {
				if strings.Contains(p.Command, "sleep") {
					return false, fmt.Sprintf("the timed-out exec is still running: %+v", p)
				}
			}
			return len(desc) == len(ps), fmt.Sprintf("asc %+v, desc %+v", ps, desc)
		})
		if len(ps) == 0 || ps[0].Pid != 1 {
			t.Fatalf("ps = %+v, want pid 1 first", ps)
		}
		// The app (pid 1 or a child of the machine's init) listens on 8080.
		listens := false
		for _, p := range ps {
			for _, s := range p.ListenSockets {
				if p.Command == "/app" && p.RSS > 0 && p.Directory == "/" && s.Proto == "tcp" && strings.HasSuffix(s.Address, ":8080") {
					listens = true
				}
			}
		}
		if !listens {
			t.Errorf("no /app process shows its :8080 listener: %+v", ps)
		}
		if desc[0].Pid != ps[len(ps)-1].Pid {
			t.Errorf("ps order=desc = %+v, asc = %+v", desc, ps)
		}
		if r := c.call("GET", base+"/ps?sort_by=nope", nil, nil); r.code != 400 {
			t.Errorf("ps sort_by=nope: %d", r.code)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		c.must(204, "POST", base+"/metadata/owner", map[string]string{"value": "team-a"}, nil)
		var md map[string]string
		c.must(200, "GET", base+"/metadata", nil, nil).decode(t, &md)
		if md["owner"] != "team-a" || md["tier"] != "web" {
			t.Fatalf("metadata = %+v", md)
		}
		var ms []types.Machine
		c.must(200, "GET", "/apps/ops/machines?metadata.owner=team-a", nil, nil).decode(t, &ms)
		if len(ms) != 1 {
			t.Fatalf("filter by metadata: %d machines", len(ms))
		}
		c.must(200, "GET", "/apps/ops/machines?metadata.owner=team-b", nil, nil).decode(t, &ms)
		if len(ms) != 0 {
			t.Fatalf("filter by other metadata: %d machines", len(ms))
		}
		c.must(204, "DELETE", base+"/metadata/owner", nil, nil)
		if r := c.call("DELETE", base+"/metadata/owner", nil, nil); r.code != 404 {
			t.Fatalf("delete missing key: %d", r.code)
		}
		if r := c.call("POST", base+"/metadata/bad%20key", map[string]string{"value": "x"}, nil); r.code != 400 {
			t.Fatalf("bad key: %d %s", r.code, r.body)
		}
	})

	t.Run("suspend and restart", func(t *testing.T) {
		c.must(200, "POST", base+"/suspend", nil, nil)
		c.must(200, "GET", base+"/wait?state=suspended&timeout=10", nil, nil)
		c.must(200, "POST", base+"/start", nil, nil)
		c.must(200, "GET", base+"/wait?state=started&timeout=10", nil, nil)
		var before, after types.Machine
		_ = d.Get("/v1"+base, &before)
		c.must(200, "POST", base+"/restart?timeout=5s&signal=SIGTERM", nil, nil)
		_ = d.Get("/v1"+base, &after)
		if after.State != types.StateStarted || after.InstanceID != before.InstanceID || harness.CountEvents(after, "restart") != 1 {
			t.Fatalf("after restart: %s, %d restart events", after.State, harness.CountEvents(after, "restart"))
		}
		if r := c.call("POST", base+"/restart?timeout=soon", nil, nil); r.code != 400 || !strings.Contains(string(r.body), "timeout") {
			t.Fatalf("restart with a bad timeout: %d %s", r.code, r.body)
		}
	})

	t.Run("signal", func(t *testing.T) {
		if r := c.call("POST", base+"/signal", map[string]string{"signal": "SIGNOPE"}, nil); r.code != 400 || !strings.Contains(string(r.body), "signal") {
			t.Fatalf("bad signal: %d %s", r.code, r.body)
		}
		// fly-go's Kill sends the number.
		c.must(200, "POST", base+"/signal", map[string]any{"signal": 9}, nil)
		c.must(200, "GET", base+"/wait?state=stopped&timeout=10", nil, nil)
		var events []types.MachineEvent
		c.must(200, "GET", base+"/events", nil, nil).decode(t, &events)
		if events[0].Type != "exit" {
			t.Fatalf("latest event %+v, want exit", events[0])
		}
		ex, _ := events[0].Request["exit_event"].(map[string]any)
		if ex == nil || ex["signal"] != float64(9) || ex["oom_killed"] != false || ex["exit_code"] == nil {
			t.Fatalf("exit event = %+v", events[0].Request)
		}
		if r := c.call("POST", base+"/signal", map[string]string{"signal": "SIGTERM"}, nil); r.code != 409 {
			t.Fatalf("signal to a stopped machine: %d %s", r.code, r.body)
		}
	})

	t.Run("oom exit event", func(t *testing.T) {
		cfg := &types.MachineConfig{Image: ref, Init: types.MachineInit{Cmd: []string{"alloc", "512"}},
			Guest:   &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 64},
			Restart: &types.MachineRestart{Policy: types.RestartNo}}
		var oom types.Machine
		c.must(200, "POST", "/apps/ops/machines", types.CreateMachineRequest{Config: cfg}, nil).decode(t, &oom)
		c.must(200, "GET", "/apps/ops/machines/"+oom.ID+"/wait?state=stopped&timeout=30", nil, nil)
		var events []types.MachineEvent
		c.must(200, "GET", "/apps/ops/machines/"+oom.ID+"/events", nil, nil).decode(t, &events)
		ex, _ := events[0].Request["exit_event"].(map[string]any)
		if events[0].Type != "exit" || ex == nil || ex["oom_killed"] != true || ex["exit_code"] == float64(0) {
			t.Fatalf("exit event of a machine over its memory = %+v", events[0])
		}
	})

	t.Run("auto_destroy after an exit", func(t *testing.T) {
		cfg := &types.MachineConfig{Image: ref, Init: types.MachineInit{Cmd: []string{"exit", "0"}}, AutoDestroy: true,
			Restart: &types.MachineRestart{Policy: types.RestartNo}}
		var m types.Machine
		c.must(200, "POST", "/apps/ops/machines", types.CreateMachineRequest{Config: cfg}, nil).decode(t, &m)
		c.must(200, "GET", "/apps/ops/machines/"+m.ID+"/wait?state=destroyed&timeout=30", nil, nil)
	})

	t.Run("cordoned is on the machine", func(t *testing.T) {
		c.must(200, "POST", base+"/cordon", nil, nil)
		var cur types.Machine
		c.must(200, "GET", base, nil, nil).decode(t, &cur)
		if !cur.Cordoned || cur.ImageRef.Registry == "" {
			t.Errorf("after a cordon: cordoned %v, image_ref %+v", cur.Cordoned, cur.ImageRef)
		}
		c.must(200, "POST", base+"/uncordon", nil, nil)
		c.must(200, "GET", base, nil, nil).decode(t, &cur)
		if cur.Cordoned {
			t.Errorf("after an uncordon: still cordoned")
		}
	})

	t.Run("every config field comes back as sent", func(t *testing.T) {
		// The whole schema (internal/types/testdata), as fly-go would send
		// it, minus mounts (their volume must exist: TestVolumes),
		// standbys (they name machines) and GPUs (refused: a 400).
		b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "internal/types/testdata/machine-config-full.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		doc["image"] = ref
		delete(doc, "mounts")
		delete(doc, "standbys")
		guest := doc["guest"].(map[string]any)
		delete(guest, "gpus")
		delete(guest, "gpu_kind")
		sent, _ := json.Marshal(doc)
		r := c.must(200, "POST", "/apps/ops/machines", map[string]any{"config": json.RawMessage(sent), "skip_launch": true}, nil)
		var created struct {
			ID     string          `json:"id"`
			Config json.RawMessage `json:"config"`
		}
		r.decode(t, &created)
		if missing := types.DroppedFields(sent, created.Config); len(missing) > 0 {
			t.Errorf("create answered without: %s", strings.Join(missing, ", "))
		}
		r = c.must(200, "GET", "/apps/ops/machines/"+created.ID, nil, nil)
		r.decode(t, &created)
		if missing := types.DroppedFields(sent, created.Config); len(missing) > 0 {
			t.Errorf("GET answered without: %s", strings.Join(missing, ", "))
		}
		c.must(200, "DELETE", "/apps/ops/machines/"+created.ID+"?force=true", nil, nil)
	})

	t.Run("fly-go's app, regions, secret and ip_assignments calls", func(t *testing.T) {
		// Shaped as flaps sends them (paths, query and bodies).
		c.must(201, "POST", "/apps?wait=true", map[string]any{"name": "flygo", "org_slug": "personal", "network": "", "app_role_id": ""}, nil)
		c.must(200, "GET", "/apps/flygo", nil, nil)
		var regions struct {
			Regions []struct {
				Code string `json:"code"`
			} `json:"Regions"`
			Nearest string `json:"Nearest"`
		}
		c.must(200, "GET", "/platform/regions", nil, nil).decode(t, &regions)
		if len(regions.Regions) != 1 || regions.Regions[0].Code == "" || regions.Nearest != regions.Regions[0].Code {
			t.Errorf("regions: %+v", regions)
		}
		c.must(200, "POST", "/apps/flygo/secrets/API_KEY", map[string]string{"value": "s3cret-value"}, nil)
		r := c.must(200, "GET", "/apps/flygo/secrets/API_KEY", nil, nil)
		if strings.Contains(string(r.body), "s3cret-value") || !strings.Contains(string(r.body), `"API_KEY"`) {
			t.Errorf("one secret: %s", r.body)
		}
		var ips types.IPAssignmentsList
		c.must(200, "GET", "/apps/flygo/ip_assignments", nil, nil).decode(t, &ips)
		if len(ips.IPs) != 0 {
			t.Errorf("before any: %+v", ips)
		}
		var ip types.IPAssignment
		c.must(201, "POST", "/apps/flygo/ip_assignments", map[string]any{"type": "private_v6", "region": "", "org_slug": "personal", "network": "", "service_name": ""}, nil).decode(t, &ip)
		if !strings.HasPrefix(ip.IP, "fdaa:") { // fly-go's IsFlycast
			t.Errorf("assigned %+v, want a Flycast address", ip)
		}
		if r := c.call("POST", "/apps/flygo/ip_assignments", map[string]any{"type": "shared_v4"}, nil); r.code != 400 || !strings.Contains(string(r.body), "shared_v4") {
			t.Errorf("shared_v4: %d %s", r.code, r.body)
		}
		c.must(204, "DELETE", "/apps/flygo/ip_assignments/"+ip.IP, nil, nil)
		if r := c.call("GET", "/apps/flygo/secretkeys", nil, nil); r.code != 400 || !strings.Contains(string(r.body), "secret keys") {
			t.Errorf("secret keys: %d %s", r.code, r.body)
		}
		c.must(202, "DELETE", "/apps/flygo", nil, nil)
	})

	t.Run("dns and env_from take effect", func(t *testing.T) {
		cfg := &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}},
			DNS: &types.DNSConfig{Nameservers: []string{"192.0.2.53"}, Searches: []string{"corp.example"},
				Options: []types.DNSOption{{Name: "ndots", Value: "2"}}, Hostname: "web-one"},
			Processes: []types.MachineProcess{{EnvFrom: []types.EnvFrom{{EnvVar: "MY_ID", FieldRef: "id"}, {EnvVar: "MY_APP", FieldRef: "app_name"}}}}}
		var dm types.Machine
		c.must(200, "POST", "/apps/ops/machines", types.CreateMachineRequest{Config: cfg}, nil).decode(t, &dm)
		c.must(200, "GET", "/apps/ops/machines/"+dm.ID+"/wait?state=started&timeout=30", nil, nil)
		read := func(path string) string {
			t.Helper()
			var body string
			harness.Poll(t, "read "+path, 20*time.Second, func() (bool, string) {
				var code int
				code, body = proxyDo(t, d, "ops", "GET", path, "", dm.ID)
				return code == 200, fmt.Sprint(code, body)
			})
			return body
		}
		if got := read("/file?path=/etc/resolv.conf"); got != "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n" {
			t.Errorf("resolv.conf: %q", got)
		}
		if got := strings.TrimSpace(read("/file?path=/proc/sys/kernel/hostname")); got != "web-one" {
			t.Errorf("hostname: %q", got)
		}
		if got := read("/file?path=/etc/hosts"); !strings.Contains(got, dm.ID+" web-one") {
			t.Errorf("/etc/hosts: %q", got)
		}
		if env := read("/env"); !strings.Contains(env, "MY_ID="+dm.ID+"\n") || !strings.Contains(env, "MY_APP=ops\n") {
			t.Errorf("env_from: %s", env)
		}
		c.must(200, "DELETE", "/apps/ops/machines/"+dm.ID+"?force=true", nil, nil)
	})
}

// flyDriver is the program that drives the lifecycle with a client
// generated from Fly's document (oapi-codegen, at test time, into a temp
// dir). It prints what it did and exits 1 on the first failure.
const flyDriver = `package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"flydrive/flyclient"
)

func ptr[T any](v T) *T { return &v }

func fail(format string, args ...any) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	ctx := context.Background()
	auth := flyclient.WithRequestEditorFn(func(ctx context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+os.Getenv("FLY_API_TOKEN"))
		return nil
	})
	c, err := flyclient.NewClientWithResponses(os.Getenv("FLY_API_HOSTNAME")+"/v1", auth)
	if err != nil {
		fail("client: %v", err)
	}
	with := func(nonce string) flyclient.RequestEditorFn {
		return func(ctx context.Context, req *http.Request) error {
			req.Header.Set("fly-machine-lease-nonce", nonce)
			return nil
		}
	}
	app := "generated"
	if r, err := c.AppsCreateWithResponse(ctx, flyclient.CreateAppRequest{AppName: ptr(app), OrgSlug: ptr("personal")}); err != nil || r.StatusCode() != 201 {
		fail("create app: %v %v", err, r)
	}
	cfg := flyclient.ApiMachineConfig{
		Image: ptr(os.Getenv("IMAGE")),
		Env:   &map[string]string{"PORT": "8080", "APP_VERSION": "1"},
		Guest: &flyclient.ApiMachineGuest{CpuKind: ptr("shared"), Cpus: ptr(1), MemoryMb: ptr(256)},
		Services: &[]flyclient.ApiMachineService{{Protocol: ptr("tcp"), InternalPort: ptr(8080),
			Checks: &[]flyclient.ApiMachineCheck{{Type: ptr("http"), Path: ptr("/healthz"), Interval: ptr("1s"), Timeout: ptr("1s")}}}},
	}
	created, err := c.MachinesCreateWithResponse(ctx, app, flyclient.CreateMachineRequest{Config: &cfg, Region: ptr("tst")})
	if err != nil || created.JSON200 == nil || created.JSON200.Id == nil {
		fail("create machine: %v %s", err, created.Body)
	}
	id, v1 := *created.JSON200.Id, *created.JSON200.InstanceId
	wait := func(state flyclient.MachinesWaitParamsState, instance string) {
		p := &flyclient.MachinesWaitParams{State: &state, Timeout: ptr(30)}
		if instance != "" {
			p.InstanceId = &instance
		}
		if r, err := c.MachinesWaitWithResponse(ctx, app, id, p); err != nil || r.StatusCode() != 200 {
			fail("wait %s: %v %s", state, err, r.Body)
		}
	}
	wait(flyclient.Started, "")
	lease, err := c.MachinesCreateLeaseWithResponse(ctx, app, id, flyclient.CreateLeaseRequest{Ttl: ptr(120), Description: ptr("generated client")})
	if err != nil || lease.JSON200 == nil || lease.JSON200.Nonce == nil || *lease.JSON200.Nonce == "" {
		fail("acquire lease: %v %s", err, lease.Body)
	}
	nonce := *lease.JSON200.Nonce
	cfg.Env = &map[string]string{"PORT": "8080", "APP_VERSION": "2"}
	if r, err := c.MachinesUpdateWithResponse(ctx, app, id, flyclient.UpdateMachineRequest{Config: &cfg}); err != nil || r.StatusCode() != 409 {
		fail("update without the nonce: %v %s, want 409", err, r.Body)
	}
	up, err := c.MachinesUpdateWithResponse(ctx, app, id, flyclient.UpdateMachineRequest{Config: &cfg}, with(nonce))
	if err != nil || up.JSON200 == nil || *up.JSON200.InstanceId == v1 || (*up.JSON200.Config.Env)["APP_VERSION"] != "2" {
		fail("update under the lease: %v %s", err, up.Body)
	}
	v2 := *up.JSON200.InstanceId
	wait(flyclient.Started, v2)
	if r, err := c.MachinesStopWithResponse(ctx, app, id, flyclient.StopRequest{Signal: ptr("SIGTERM"), Timeout: ptr("10s")}, with(nonce)); err != nil || r.StatusCode() != 200 {
		fail("stop: %v %s", err, r.Body)
	}
	wait(flyclient.Stopped, v2)
	if r, err := c.MachinesStartWithResponse(ctx, app, id, with(nonce)); err != nil || r.StatusCode() != 200 {
		fail("start: %v %s", err, r.Body)
	}
	wait(flyclient.Started, v2)
	show, err := c.MachinesShowWithResponse(ctx, app, id)
	if err != nil || show.JSON200 == nil || *show.JSON200.State != "started" || show.JSON200.Nonce == nil || *show.JSON200.Nonce != nonce {
		fail("show: %v %s", err, show.Body)
	}
	if r, err := c.MachinesReleaseLeaseWithResponse(ctx, app, id, with(nonce)); err != nil || r.StatusCode() != 200 {
		fail("release lease: %v %s", err, r.Body)
	}
	force := func(ctx context.Context, req *http.Request) error { req.URL.RawQuery = "force=true"; return nil }
	if r, err := c.MachinesDeleteWithResponse(ctx, app, id, force); err != nil || r.StatusCode() != 200 {
		fail("destroy: %v %s", err, r.Body)
	}
	wait(flyclient.Destroyed, "")
	if r, err := c.AppsDeleteWithResponse(ctx, app); err != nil || r.StatusCode() != 202 {
		fail("delete app: %v %s", err, r.Body)
	}
	fmt.Println("OK", id, v1, v2)
}
`

// validatingProxy forwards to the daemon and checks every exchange
// against Fly's document.
func validatingProxy(t *testing.T, daemon string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	var router routers.Router
	// The router needs the server's URL, and the handler needs the router:
	// make the listener first, load the document, then serve, so the
	// router is written before any handler goroutine exists.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		// The router matches the document's server URL: this proxy's.
		r.URL.Scheme, r.URL.Host = "http", r.Host
		route, params, err := router.FindRoute(r)
		var in *openapi3filter.RequestValidationInput
		if err != nil {
			t.Errorf("generated client sent %s %s, not an operation of Fly's document: %v", r.Method, r.URL.Path, err)
		} else {
			in = &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s %s: request does not match Fly's document: %v", r.Method, r.URL.Path, err)
			}
		}
		req, _ := http.NewRequest(r.Method, daemon+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if in != nil && resp.StatusCode/100 == 2 {
			rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
				Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			rin.SetBodyBytes(out)
			if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
				t.Errorf("%s %s: response %d does not match Fly's document: %v", r.Method, r.URL.Path, resp.StatusCode, err)
			}
		}
		n.Add(1)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(out)
	}))
	_, router = loadFlyDoc(t, "http://"+srv.Listener.Addr().String())
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestGeneratedClientLifecycle generates a client from Fly's document with
// oapi-codegen (the module's tool, at test time, into a temp dir) and has
// it drive a machine's life through a proxy that validates every request
// and response against the document.
func TestGeneratedClientLifecycle(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := os.Stat(flyDocPath()); err != nil {
		t.Skipf("Fly's OpenAPI description is not at %s (CI keeps ../shared beside the clone); skipped", flyDocPath())
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "flyclient"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "oapi-codegen.yaml")
	if err := os.WriteFile(cfg, []byte("package: flyclient\ngenerate:\n  client: true\n  models: true\noutput: "+filepath.Join(dir, "flyclient", "client.gen.go")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := exec.Command("go", "tool", "oapi-codegen", "-config", cfg, flyDocPath())
	gen.Dir = harness.RepoRoot()
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	// The driver is its own module using the repo's pinned dependency
	// versions (oapi-codegen/runtime among them), so it builds from the
	// module cache.
	gomod, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var mod []string
	for _, line := range strings.Split(string(gomod), "\n") {
		switch {
		case strings.HasPrefix(line, "module "):
			line = "module flydrive"
		case strings.HasPrefix(line, "tool "):
			continue
		}
		mod = append(mod, line)
	}
	gosum, _ := os.ReadFile(filepath.Join(harness.RepoRoot(), "go.sum"))
	for name, b := range map[string][]byte{"go.mod": []byte(strings.Join(mod, "\n")), "go.sum": gosum, "main.go": []byte(flyDriver)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-mod=mod", "-o", "flydrive", ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the generated client's driver: %v\n%s", err, out)
	}

	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	proxy, exchanges := validatingProxy(t, d.API)
	run := exec.Command(filepath.Join(dir, "flydrive"))
	run.Env = append(os.Environ(), "FLY_API_HOSTNAME="+proxy.URL, "FLY_API_TOKEN="+d.Token, "IMAGE="+ref)
	out, err := run.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "OK ") {
		t.Fatalf("generated client: %v\n%s", err, out)
	}
	if n := exchanges.Load(); n < 15 {
		t.Fatalf("only %d exchanges went through the validating proxy", n)
	}
	t.Logf("generated client: %s(%d exchanges validated)", out, exchanges.Load())
}
