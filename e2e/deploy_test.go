package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

const zdConfig = `app = "zd"
primary_region = "tst"
kill_signal = "SIGTERM"
kill_timeout = "5s"

[env]
  PORT = "8080"
  APP_VERSION = "%s"
  UNHEALTHY = "%s"

[deploy]
  wait_timeout = "%s"
  %s

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

func writeZD(t *testing.T, dir, version, unhealthy, wait, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "fly.toml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(zdConfig, version, unhealthy, wait, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// finishLoad stops l and fails the test if any request failed.
func finishLoad(t *testing.T, l *harness.Load, what string) {
	t.Helper()
	sent, failed, errs := l.Finish()
	t.Logf("%s: %d requests, %d failed", what, sent, failed)
	if failed != 0 {
		t.Errorf("%s: %d of %d requests failed: %v", what, failed, sent, errs)
	}
	if sent < 10 {
		t.Errorf("%s: only %d requests were sent; the load did not run", what, sent)
	}
}

// versions returns the APP_VERSION of every started machine of app.
func versions(t *testing.T, d *harness.Daemon, app string) map[string]int {
	out := map[string]int{}
	for _, m := range d.Machines(app) {
		if m.State == types.StateStarted {
			out[m.Config.Env["APP_VERSION"]]++
		}
	}
	return out
}

// openWS opens a WebSocket to app's /ws echo through the proxy and checks
// one echo.
func openWS(t *testing.T, d *harness.Daemon, app string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	addr := strings.TrimPrefix(d.HTTP, "http://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	c, _, err := websocket.Dial(ctx, "ws://"+app+".test.internal/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatalf("websocket to %s: %v", app, err)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("ping")); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != "ping" {
		t.Fatalf("websocket echo: %q %v", got, err)
	}
	return c
}

// deployZD starts a daemon and deploys release "v1" of the zd app on one
// machine; it returns the daemon, the image and the config's directory.
func deployZD(t *testing.T) (*harness.Daemon, string, string) {
	t.Helper()
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	dir := t.TempDir()
	cfg := writeZD(t, dir, "v1", "0", "30s", "")
	if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
		t.Fatalf("first deploy: %v\n%s", err, out)
	}
	return d, ref, dir
}

func TestZeroDowntimeDeploys(t *testing.T) {
	d, ref, dir := deployZD(t)
	if out, err := d.Hangar("scale", "count", "3", "-a", "zd"); err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["v1"] != 3 || len(v) != 1 {
		t.Fatalf("after scale: %v, want 3 machines of v1", v)
	}
	for i, strategy := range []string{"rolling", "bluegreen", "canary"} {
		version := fmt.Sprintf("v%d", i+2)
		cfg := writeZD(t, dir, version, "0", "30s", "")
		// 200 keep-alive connections, as the issue asks; the app sets no
		// hard_limit, so none of them waits in the proxy's queue.
		l := d.StartLoad("zd", 200)
		// A WebSocket open across the deploy gets a clean close (1001)
		// when its machine drains.
		ws := openWS(t, d, "zd")
		wsClosed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					wsClosed <- err
					return
				}
			}
		}()
		// A long request in flight across the deploy must complete.
		long := make(chan string, 1)
		go func() {
			code, body, err := d.ViaProxy("zd", "/sleep?d=1500ms")
			long <- fmt.Sprint(code, " ", strings.TrimSpace(body), " ", err)
		}()
		start := time.Now()
		out, err := d.Hangar("deploy", "-c", cfg, "--image", ref, "--strategy", strategy)
		took := time.Since(start)
		finishLoad(t, l, strategy+" deploy")
		if err != nil {
			t.Fatalf("%s deploy: %v\n%s", strategy, err, out)
		}
		if got := <-long; !strings.HasPrefix(got, "200 slept 1.5s") {
			t.Errorf("%s: long request in flight: %s", strategy, got)
		}
		select {
		case err := <-wsClosed:
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Errorf("%s: the WebSocket open across the deploy ended with %v, want a close frame with status 1001", strategy, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the WebSocket open across the deploy was not closed although its machine is gone", strategy)
		}
		ws.CloseNow()
		if v := versions(t, d, "zd"); v[version] != 3 || len(v) != 1 {
			t.Fatalf("%s: machines after deploy: %v, want 3 of %s", strategy, v, version)
		}
		if n := len(d.Machines("zd")); n != 3 {
			t.Fatalf("%s: %d machines left, want 3 (old ones must be destroyed)", strategy, n)
		}
		t.Logf("%s deploy of 3 machines took %v", strategy, took.Round(time.Millisecond))
	}
}

func TestFailingDeployRollsBack(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	dir := t.TempDir()
	if out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "good", "0", "30s", ""), "--image", ref); err != nil {
		t.Fatalf("first deploy: %v\n%s", err, out)
	}
	if out, err := d.Hangar("scale", "count", "2", "-a", "zd"); err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	before := d.Machines("zd")
	t.Run("failing checks", func(t *testing.T) {
		l := d.StartLoad("zd", 16)
		out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "bad", "1", "3s", ""), "--image", ref)
		finishLoad(t, l, "failing deploy")
		if err == nil || !strings.Contains(out, "not healthy") {
			t.Fatalf("deploy of an unhealthy release: want a failure naming the checks, got %v\n%s", err, out)
		}
		if v := versions(t, d, "zd"); v["good"] != 2 || len(v) != 1 {
			t.Fatalf("after the failed deploy: %v, want the 2 good machines", v)
		}
		rels, _ := d.Hangar("releases", "-a", "zd", "--json")
		if !strings.Contains(rels, `"status": "failed"`) || !strings.Contains(rels, "not healthy") {
			t.Fatalf("failed release not recorded with its reason:\n%s", rels)
		}
	})
	t.Run("release command exits 1", func(t *testing.T) {
		out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "rc", "0", "30s", `release_command = "exit 1"`), "--image", ref)
		if err == nil || !strings.Contains(out, "release command failed with exit code 1") || !strings.Contains(out, "exiting with 1") {
			t.Fatalf("want the release command's failure and its output, got %v\n%s", err, out)
		}
		after := d.Machines("zd")
		if len(after) != len(before) {
			t.Fatalf("machines changed: %d before, %d after", len(before), len(after))
		}
		for i := range after {
			if after[i].ID != before[i].ID || after[i].InstanceID != before[i].InstanceID {
				t.Fatalf("machine %s changed by an aborted deploy", before[i].ID)
			}
		}
	})
	t.Run("a machine leased by someone else", func(t *testing.T) {
		m := d.Machines("zd")[0]
		code, body := d.Call("POST", "/v1/apps/zd/machines/"+m.ID+"/lease", map[string]any{"ttl": 60, "description": "operator at work"})
		if code != 200 {
			t.Fatalf("acquire lease: %d %s", code, body)
		}
		var l struct {
			Nonce string `json:"nonce"`
		}
		_ = json.Unmarshal([]byte(body), &l)
		out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "leased", "0", "30s", ""), "--image", ref)
		if err == nil || !strings.Contains(out, "operator at work") {
			t.Fatalf("deploy over a leased machine: want a failure naming the lease, got %v\n%s", err, out)
		}
		if v := versions(t, d, "zd"); v["leased"] != 0 {
			t.Fatalf("machines changed by a deploy that could not lease them: %v", v)
		}
		req, _ := http.NewRequest("DELETE", d.API+"/v1/apps/zd/machines/"+m.ID+"/lease", nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		req.Header.Set("fly-machine-lease-nonce", l.Nonce)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("release lease: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("release command succeeds", func(t *testing.T) {
		out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "rc-ok", "0", "30s", `release_command = "exit 0"`), "--image", ref)
		if err != nil || !strings.Contains(out, "exiting with 0") {
			t.Fatalf("deploy with a good release command: %v\n%s", err, out)
		}
		if v := versions(t, d, "zd"); v["rc-ok"] != 2 {
			t.Fatalf("after deploy: %v", v)
		}
		// The deploy's own leases are gone with it.
		for _, m := range d.Machines("zd") {
			if code, body := d.Call("GET", "/v1/apps/zd/machines/"+m.ID+"/lease", nil); code != 404 {
				t.Fatalf("machine %s still leased after the deploy: %d %s", m.ID, code, body)
			}
		}
	})
}

func TestRollbackRestoresConfig(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	dir := t.TempDir()
	for _, v := range []string{"one", "two"} {
		// [[files]] local_path: the CLI reads it beside fly.toml and the
		// release keeps it, so a rollback brings the old content back.
		if err := os.WriteFile(filepath.Join(dir, "app.conf"), []byte("conf-"+v), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := writeZD(t, dir, v, "0", "30s", "")
		f, _ := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
		fmt.Fprint(f, "\n[[files]]\n  guest_path = \"/etc/app.conf\"\n  local_path = \"app.conf\"\n")
		f.Close()
		if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
			t.Fatalf("deploy %s: %v\n%s", v, err, out)
		}
		if code, body, _ := d.ViaProxy("zd", "/file?path=/etc/app.conf"); code != 200 || body != "conf-"+v {
			t.Fatalf("local_path file after deploy %s: %d %q", v, code, body)
		}
	}
	if out, err := d.Hangar("scale", "vm", "shared-cpu-2x", "-a", "zd"); err != nil {
		t.Fatalf("scale vm: %v\n%s", err, out)
	}
	for _, m := range d.Machines("zd") {
		if m.Config.Guest == nil || m.Config.Guest.MemoryMB != 512 || m.Config.Guest.CPUs != 2 {
			t.Fatalf("after scale vm: guest %+v", m.Config.Guest)
		}
	}
	out, err := d.Hangar("rollback", "1", "-a", "zd")
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["one"] != 1 || len(v) != 1 {
		t.Fatalf("after rollback: %v, want release one's env", v)
	}
	code, body, err := d.ViaProxy("zd", "/")
	if err != nil || code != 200 || !strings.Contains(body, "version=one") {
		t.Fatalf("serving after rollback: %d %q %v", code, body, err)
	}
	if code, body, _ := d.ViaProxy("zd", "/file?path=/etc/app.conf"); code != 200 || body != "conf-one" {
		t.Fatalf("local_path file after rollback: %d %q, want release one's", code, body)
	}
	show, err := d.Hangar("releases", "show", "2", "-a", "zd")
	if err != nil || !strings.Contains(show, `+   APP_VERSION = "two"`) || !strings.Contains(show, `-   APP_VERSION = "one"`) {
		t.Fatalf("releases show v2 should diff APP_VERSION against v1: %v\n%s", err, show)
	}
}

const groupsConfig = `app = "pg"
primary_region = "tst"
[env]
  PORT = "8080"
[processes]
%s
[http_service]
  internal_port = 8080
  processes = ["web"]
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// Process groups deploy together; a group removed from fly.toml loses its
// machines and a new group gets one.
func TestProcessGroups(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	deploy := func(procs string) map[string]int {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(groupsConfig, procs)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
			t.Fatalf("deploy: %v\n%s", err, out)
		}
		groups := map[string]int{}
		for _, m := range d.Machines("pg") {
			groups[m.Config.Metadata[types.MetaProcessGroup]]++
			if m.State != types.StateStarted {
				t.Fatalf("machine %s is %s", m.ID, m.State)
			}
		}
		return groups
	}
	g := deploy("  web = \"/app\"\n  worker = \"/app sleep 1h\"")
	if g["web"] != 1 || g["worker"] != 1 || len(g) != 2 {
		t.Fatalf("groups after the first deploy: %v", g)
	}
	if code, body, _ := d.ViaProxy("pg", "/"); code != 200 {
		t.Fatalf("web group not serving: %d %s", code, body)
	}
	// flyctl's forms of scale count: GROUP=N pairs, and --region (this
	// host's only).
	if out, err := d.Hangar("scale", "count", "web=2", "worker=0", "-a", "pg"); err != nil {
		t.Fatalf("scale count web=2 worker=0: %v\n%s", err, out)
	}
	counts := map[string]int{}
	for _, m := range d.Machines("pg") {
		counts[m.Config.Metadata[types.MetaProcessGroup]]++
	}
	if counts["web"] != 2 || counts["worker"] != 0 {
		t.Fatalf("after scale count web=2 worker=0: %v", counts)
	}
	if out, err := d.Hangar("scale", "count", "1", "--process-group", "worker", "--region", "tst", "-a", "pg"); err != nil {
		t.Fatalf("scale count 1 --process-group worker --region tst: %v\n%s", err, out)
	}
	if out, err := d.Hangar("scale", "count", "web=1", "-a", "pg"); err != nil {
		t.Fatalf("scale count web=1: %v\n%s", err, out)
	}
	counts = map[string]int{}
	for _, m := range d.Machines("pg") {
		counts[m.Config.Metadata[types.MetaProcessGroup]]++
	}
	if counts["web"] != 1 || counts["worker"] != 1 {
		t.Fatalf("after scale count 1 --process-group worker and web=1: %v", counts)
	}
	if out, err := d.Hangar("scale", "count", "web=1", "--region", "fra", "-a", "pg"); err == nil || !strings.Contains(out, "one host") || !strings.Contains(out, "add hosts") {
		t.Fatalf("scale count --region fra: %v, want an error saying the installation has one host\n%s", err, out)
	}
	g = deploy("  web = \"/app\"\n  cron = \"/app sleep 2h\"")
	if g["web"] != 1 || g["cron"] != 1 || g["worker"] != 0 || len(g) != 2 {
		t.Fatalf("groups after dropping worker and adding cron: %v", g)
	}
}

// --detach returns once the release has started; it completes on its own.
// --json prints one machine-readable event per line.
func TestDeployDetachAndJSON(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	dir := t.TempDir()
	out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "j1", "0", "30s", ""), "--image", ref, "--json")
	if err != nil {
		t.Fatalf("deploy --json: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last map[string]any
	for _, l := range lines {
		if strings.HasPrefix(l, "==>") {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("--json line is not JSON: %q", l)
		}
		last = v
	}
	if rel, ok := last["release"].(map[string]any); !ok || rel["status"] != "complete" {
		t.Fatalf("--json did not end with the complete release: %v", last)
	}
	out, err = d.Hangar("deploy", "-c", writeZD(t, dir, "j2", "0", "30s", ""), "--image", ref, "--detach")
	if err != nil || !strings.Contains(out, "started") {
		t.Fatalf("deploy --detach: %v\n%s", err, out)
	}
	harness.Poll(t, "the detached release completes", 60*time.Second, func() (bool, string) {
		rels, _ := d.Hangar("releases", "-a", "zd", "--json")
		var rs []map[string]any
		_ = json.Unmarshal([]byte(rels), &rs)
		return len(rs) == 2 && rs[0]["status"] == "complete", rels
	})
	if v := versions(t, d, "zd"); v["j2"] != 1 {
		t.Fatalf("after the detached deploy: %v", v)
	}
}

// TestScaleCount checks that scale count adds and removes machines and
// leaves the others alone: the machines that serve keep their IDs, no
// request fails, a stopped machine goes before a serving one, and the
// count carries over to the next deploy.
func TestScaleCount(t *testing.T) {
	d, ref, dir := deployZD(t)
	ids := func() map[string]types.Machine {
		out := map[string]types.Machine{}
		for _, m := range d.Machines("zd") {
			out[m.ID] = m
		}
		return out
	}
	first := ids()
	if len(first) != 1 {
		t.Fatalf("after the first deploy: %d machines, want 1", len(first))
	}

	l := d.StartLoad("zd", 16)
	out, err := d.Hangar("scale", "count", "3", "-a", "zd")
	finishLoad(t, l, "scale up")
	if err != nil {
		t.Fatalf("scale count 3: %v\n%s", err, out)
	}
	up := ids()
	if len(up) != 3 {
		t.Fatalf("after scale count 3: %d machines, want 3\n%s", len(up), out)
	}
	for id := range first {
		if m, ok := up[id]; !ok || m.State != types.StateStarted {
			t.Fatalf("scale count 3 replaced or stopped machine %s (machines now: %s)\n%s", id, strings.Join(keys(up), " "), out)
		}
	}
	for id, m := range up {
		if m.State != types.StateStarted {
			t.Errorf("machine %s is %s after scale up, want started", id, m.State)
		}
	}

	// A stopped machine is the first to go when scaling down.
	var stopped string
	for id := range up {
		if _, orig := first[id]; !orig {
			stopped = id
			break
		}
	}
	if out, err := d.Hangar("machine", "stop", stopped, "-a", "zd"); err != nil {
		t.Fatalf("stop %s: %v\n%s", stopped, err, out)
	}
	l = d.StartLoad("zd", 16)
	out, err = d.Hangar("scale", "count", "2", "-a", "zd")
	finishLoad(t, l, "scale down")
	if err != nil {
		t.Fatalf("scale count 2: %v\n%s", err, out)
	}
	down := ids()
	if len(down) != 2 {
		t.Fatalf("after scale count 2: %d machines, want 2\n%s", len(down), out)
	}
	if _, ok := down[stopped]; ok {
		t.Fatalf("scale down kept the stopped machine %s and removed a serving one\n%s", stopped, out)
	}
	for id, m := range down {
		if _, ok := up[id]; !ok || m.State != types.StateStarted {
			t.Fatalf("after scale down: machine %s is %s (new: %v), want one of the serving machines, started", id, m.State, !ok)
		}
	}

	// Down to one while serving: the other started machine is drained.
	l = d.StartLoad("zd", 16)
	out, err = d.Hangar("scale", "count", "1", "-a", "zd")
	finishLoad(t, l, "scale down to 1")
	if err != nil {
		t.Fatalf("scale count 1: %v\n%s", err, out)
	}
	if n := len(ids()); n != 1 {
		t.Fatalf("after scale count 1: %d machines, want 1", n)
	}

	rels, _ := d.Hangar("releases", "-a", "zd", "--json")
	if !strings.Contains(rels, "scale count app 1→3") || !strings.Contains(rels, `"strategy": "scale"`) {
		t.Errorf("releases do not record the scale: %s", rels)
	}
	// One host serves one region: --region names it or is refused.
	if out, err := d.Hangar("scale", "count", "2", "-a", "zd", "--region", "ams"); err == nil || !strings.Contains(out, `one host, in region "tst"`) {
		t.Fatalf("scale count --region ams: %v\n%s; want a refusal naming this host's region", err, out)
	}
	// The next deploy keeps the count and replaces the machine.
	if out, err := d.Hangar("scale", "count", "2", "-a", "zd", "--region", "tst"); err != nil {
		t.Fatalf("scale count 2 --region tst: %v\n%s", err, out)
	}
	if out, err := d.Hangar("deploy", "-c", writeZD(t, dir, "v2", "0", "30s", ""), "--image", ref); err != nil {
		t.Fatalf("deploy v2: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["v2"] != 2 || len(v) != 1 {
		t.Fatalf("after deploy v2: %v, want 2 machines of v2", v)
	}
	// A rollback skips the releases that only scaled, and keeps the count.
	if out, err := d.Hangar("rollback", "-a", "zd"); err != nil {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if v := versions(t, d, "zd"); v["v1"] != 2 || len(v) != 1 {
		t.Fatalf("after rollback: %v, want 2 machines of v1", v)
	}
}

func keys(m map[string]types.Machine) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
