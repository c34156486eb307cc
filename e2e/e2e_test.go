// Package e2e drives the real hangar binary the way a user does: it starts
// `hangar server` on a temp data dir and free ports, deploys the example
// app with `hangar deploy`, and talks to the proxy and the API over HTTP.
// Needs root (containers, network namespaces) and runc or crun.
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestDeployKillRestart is the foundation's promise: deploy the example,
// get 200 through the proxy, kill -9 the daemon, start it again, and find the
// same machine still started, never restarted, serving again.
func TestDeployKillRestart(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	out, err := d.Hangar("deploy", "-c", "examples/hello/fly.toml")
	if err != nil {
		t.Fatalf("deploy failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Visit your app at http://hello.test.internal:") {
		t.Fatalf("deploy did not print the URL:\n%s", out)
	}
	ms := d.Machines("hello")
	if len(ms) != 1 || ms[0].State != types.StateStarted {
		t.Fatalf("machines after deploy: %+v", ms)
	}
	m := ms[0]
	code, body, err := d.ViaProxy("hello", "/")
	if err != nil || code != 200 || !strings.Contains(body, m.ID) || !strings.Contains(body, "region:  tst") {
		t.Fatalf("through the proxy: %d %q %v", code, body, err)
	}
	status, err := d.Hangar("status", "-a", "hello", "--json")
	if err != nil || !strings.Contains(status, m.ID) || !strings.Contains(status, `"status": "passing"`) {
		t.Fatalf("status: %v\n%s", err, status)
	}

	d.Stop(syscall.SIGKILL)
	// While the daemon is down the machine keeps serving on its own address.
	d.Start()
	ms2 := d.Machines("hello")
	if len(ms2) != 1 || ms2[0].ID != m.ID || ms2[0].State != types.StateStarted || ms2[0].InstanceID != m.InstanceID {
		t.Fatalf("after restart: %+v, want machine %s started", ms2, m.ID)
	}
	if harness.CountEvents(ms2[0], "start") != 1 || harness.CountEvents(ms2[0], "exit") != 0 {
		t.Fatalf("machine was restarted: events %+v", ms2[0].Events)
	}
	harness.Poll(t, "proxy serves again after the restart", 10*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("hello", "/")
		return err == nil && code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
	})
	logs, err := d.Hangar("logs", "-a", "hello")
	if err != nil || strings.Count(logs, "hello listening on :8080") != 1 {
		t.Fatalf("logs should show one start of the app: %v\n%s", err, logs)
	}
}

func TestRestartPolicyAndChecks(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "pol"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}

	t.Run("on-failure with max retries", func(t *testing.T) {
		cfg := types.MachineConfig{Image: ref, Init: types.MachineInit{Cmd: []string{"exit", "3"}},
			Restart: &types.MachineRestart{Policy: types.RestartOnFailure, MaxRetries: 2}}
		code, body := d.Call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		harness.Poll(t, "three exits then stopped", 30*time.Second, func() (bool, string) {
			var cur types.Machine
			if err := d.Get("/v1/apps/pol/machines/"+m.ID, &cur); err != nil {
				return false, err.Error()
			}
			return harness.CountEvents(cur, "exit") == 3 && cur.State == types.StateStopped, fmt.Sprintf("%s, %d exits", cur.State, harness.CountEvents(cur, "exit"))
		})
		var cur types.Machine
		_ = d.Get("/v1/apps/pol/machines/"+m.ID, &cur)
		ev := cur.Events[0].Request["exit_event"].(map[string]any)
		if ev["exit_code"].(float64) != 3 || ev["restarting"].(bool) {
			t.Fatalf("last exit event = %+v", ev)
		}
		// It stays stopped: no fourth run. A restart after the third exit
		// would come after a 400 ms backoff; wait well past it.
		time.Sleep(time.Second)
		_ = d.Get("/v1/apps/pol/machines/"+m.ID, &cur)
		if harness.CountEvents(cur, "exit") != 3 {
			t.Fatalf("restarted beyond max_retries: %d exits", harness.CountEvents(cur, "exit"))
		}
	})

	t.Run("always restarts a crashed server", func(t *testing.T) {
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Restart:  &types.MachineRestart{Policy: types.RestartAlways},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(time.Second)}}}}}
		code, body := d.Call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		harness.Poll(t, "serving", 15*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("pol", "/")
			return code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
		})
		_, _, _ = d.ViaProxy("pol", "/crash")
		harness.Poll(t, "restarted after the crash and serving again", 15*time.Second, func() (bool, string) {
			var cur types.Machine
			_ = d.Get("/v1/apps/pol/machines/"+m.ID, &cur)
			code, body, _ := d.ViaProxy("pol", "/")
			return harness.CountEvents(cur, "exit") == 1 && cur.State == types.StateStarted && code == 200, fmt.Sprint(cur.State, code, body)
		})
		if code, body := d.Call("DELETE", "/v1/apps/pol/machines/"+m.ID+"?force=true", nil); code != 200 {
			t.Fatalf("destroy: %d %s", code, body)
		}
	})

	t.Run("failing check gets no traffic", func(t *testing.T) {
		mk := func(unhealthy string) types.Machine {
			cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080", "UNHEALTHY": unhealthy},
				Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond)}}}}}
			code, body := d.Call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
			if code != 200 {
				t.Fatalf("create: %d %s", code, body)
			}
			var m types.Machine
			_ = json.Unmarshal([]byte(body), &m)
			return m
		}
		good, bad := mk("0"), mk("1")
		harness.Poll(t, "good machine serving", 15*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("pol", "/")
			return code == 200 && strings.Contains(body, good.ID), fmt.Sprint(code, body, err)
		})
		for i := 0; i < 30; i++ {
			code, body, _ := d.ViaProxy("pol", "/")
			if code != 200 || strings.Contains(body, bad.ID) {
				t.Fatalf("request %d: %d %q; the unhealthy machine %s must get nothing", i, code, body, bad.ID)
			}
		}
		harness.Poll(t, "the bad machine's check reports its 503", 10*time.Second, func() (bool, string) {
			var cur types.Machine
			_ = d.Get("/v1/apps/pol/machines/"+bad.ID, &cur)
			ok := len(cur.Checks) == 1 && cur.Checks[0].Status == types.CheckCritical && strings.Contains(cur.Checks[0].Output, "503")
			return ok, fmt.Sprintf("%+v", cur.Checks)
		})
		// The good machine turns sick: it leaves rotation within an interval.
		_, _, _ = d.ViaProxy("pol", "/sick")
		harness.Poll(t, "no healthy machine: 503", 10*time.Second, func() (bool, string) {
			code, body, _ := d.ViaProxy("pol", "/")
			return code == 503 && strings.Contains(body, "no started machine with passing health checks"), fmt.Sprint(code, body)
		})
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	bad := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(bad, []byte("app = \"broken\"\n[http_service]\ninternal_port = \"eighty\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := d.Hangar("deploy", "-c", bad)
	if err == nil || !strings.Contains(out, "fly.toml:3") {
		t.Fatalf("malformed fly.toml: want an error with its line, got %v\n%s", err, out)
	}
	code, body := d.Call("GET", "/v1/apps/broken", nil)
	if code != 404 {
		t.Fatalf("app created by a failed deploy: %d %s", code, body)
	}
	for _, c := range []struct {
		body string
		want string
	}{
		{`{"app_name": 5}`, "app_name"},
		{`{"app_name": "Bad Name"}`, "lowercase"},
		{`not json`, "not valid JSON"},
		{``, "empty body"},
	} {
		code, body := d.Call("POST", "/v1/apps", c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("POST /v1/apps %q: %d %s, want 400 mentioning %q", c.body, code, body, c.want)
		}
	}
	if code, body := d.Call("POST", "/v1/apps", strings.Repeat(" ", 2<<20)+"{}"); code != 413 {
		t.Errorf("huge body: %d %s, want 413", code, body)
	}
	var res struct {
		Apps []types.App `json:"apps"`
	}
	if err := d.Get("/v1/apps", &res); err != nil || len(res.Apps) != 0 {
		t.Fatalf("apps after bad input: %+v %v", res.Apps, err)
	}
	// Auth: no token, a wrong token.
	req, _ := http.NewRequest("GET", d.API+"/v1/apps", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	req.Header.Set("Authorization", "Bearer hgr_wrong")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong token: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	// A wait that times out is a 408.
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "w"}); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	if code, body := d.Call("GET", "/v1/apps/w/machines/00000000000000/wait?state=started&timeout=1", nil); code != 404 {
		t.Fatalf("wait on a missing machine: %d %s", code, body)
	}
	if code, body := d.Call("GET", "/v1/apps/w/machines/x/wait?timeout=99", nil); code != 400 {
		t.Fatalf("wait with timeout 99: %d %s", code, body)
	}
}
