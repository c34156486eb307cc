package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestReplacing drives machine updates on a real daemon: a started machine
// is "replacing" (in GET, in the list, in its events) while the update
// runs, out of the proxy's rotation but with its in-flight request let
// finish, and then started with the new config; a stopped machine's update
// leaves it stopped, with skip_launch or without, as on Fly's hosts. And a machine's
// [[files]] tmpfs directory lives only while it runs: gone when it stops
// and when it is destroyed.
func TestReplacing(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	c := &flyClient{t: t, base: d.API, token: d.Token}
	if _, err := os.Stat(flyDocPath()); err == nil {
		_, c.router = loadFlyDoc(t, d.API) // every request and response checked against Fly's document
	}
	raw := &flyClient{t: t, base: d.API, token: d.Token} // for what Fly's document does not list
	for _, app := range []string{"repl", "repl-stopped", "repl-files"} {
		c.must(201, "POST", "/apps", map[string]any{"app_name": app, "org_slug": "personal"}, nil)
	}
	web := func(version string) map[string]any {
		return map[string]any{
			"image": ref,
			"env":   map[string]string{"PORT": "8080", "APP_VERSION": version},
			"services": []any{map[string]any{"protocol": "tcp", "internal_port": 8080,
				"ports":  []any{map[string]any{"port": 80, "handlers": []string{"http"}}},
				"checks": []any{map[string]any{"type": "http", "path": "/healthz", "interval": "1s", "timeout": "1s"}}}},
		}
	}

	t.Run("started machine", func(t *testing.T) {
		c.t, raw.t = t, t
		var m types.Machine
		c.must(200, "POST", "/apps/repl/machines", map[string]any{"config": web("1")}, nil).decode(t, &m)
		base := "/apps/repl/machines/" + m.ID
		c.must(200, "GET", base+"/wait?state=started&timeout=30", nil, nil)
		harness.Poll(t, "version 1 serves", 20*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("repl", "/")
			return err == nil && code == 200 && strings.Contains(body, "version=1"), fmt.Sprint(code, body, err)
		})

		// A request in flight when the update begins: the proxy drains it
		// (it finishes on the old version) before the old task stops, so
		// the machine is replacing for about as long as it sleeps.
		type answer struct {
			code int
			body string
			err  error
		}
		slept := make(chan answer, 1)
		go func() {
			code, body, err := d.ViaProxy("repl", "/sleep?d=2s")
			slept <- answer{code, body, err}
		}()
		harness.Poll(t, "the slow request is in flight", 10*time.Second, func() (bool, string) {
			_, body, err := d.ViaProxy("repl", "/inflight")
			return err == nil && strings.Contains(body, "inflight=1"), fmt.Sprint(body, err)
		})

		// Watch the machine (GET and list, as fast as they answer) while
		// the update runs; the first time it is replacing, ask the proxy.
		w := watch(d, "repl", m.ID)
		var up types.Machine
		c.must(200, "POST", base, map[string]any{"config": web("2")}, nil).decode(t, &up)
		seen := w.stop()

		if up.State != types.StateStarted || up.InstanceID == m.InstanceID || up.Config.Env["APP_VERSION"] != "2" {
			t.Fatalf("update answered %s, instance %s (was %s), env %v", up.State, up.InstanceID, m.InstanceID, up.Config.Env)
		}
		if !slices.Contains(seen.get, types.StateReplacing) || !slices.Contains(seen.list, types.StateReplacing) {
			t.Fatalf("never saw replacing: GET %v, list %v", seen.get, seen.list)
		}
		// One state for the whole update: never stopping, stopped or
		// starting in between.
		if got := strings.Join(seen.get, ","); got != "started,replacing,started" {
			t.Fatalf("states in GET = %s, want started,replacing,started", got)
		}
		if got := strings.Join(seen.list, ","); got != "started,replacing,started" {
			t.Fatalf("states in the list = %s, want started,replacing,started", got)
		}
		// While replacing the proxy did not route to the machine: that
		// request got no answer from the old version.
		if seen.proxyErr != nil || (seen.proxyCode == 200 && !strings.Contains(seen.proxyBody, "version=2")) {
			t.Fatalf("a request while replacing: %d %q %v, want no answer from version 1", seen.proxyCode, seen.proxyBody, seen.proxyErr)
		}
		// The in-flight request finished on the old version.
		a := <-slept
		if a.err != nil || a.code != 200 || !strings.Contains(a.body, "slept 2s") {
			t.Fatalf("the request in flight during the update: %d %q %v", a.code, a.body, a.err)
		}

		// Events as Fly records them: the update with status replacing,
		// then the new version's start.
		var events []types.MachineEvent
		c.must(200, "GET", base+"/events", nil, nil).decode(t, &events)
		if len(events) < 3 || events[0].Type != "start" || events[0].Status != types.StateStarted ||
			events[1].Type != "update" || events[1].Status != types.StateReplacing || events[1].Source != "user" {
			t.Fatalf("events = %+v", events)
		}
		for _, e := range events[:2] {
			if e.Type == "stop" || e.Status == types.StateStopped {
				t.Fatalf("the update recorded a stop: %+v", events)
			}
		}

		// wait: the new version is started; replacing is not a state one
		// can wait for (Fly's wait takes started, stopped, suspended and
		// destroyed), and the old version is replaced.
		c.must(200, "GET", base+"/wait?state=started&timeout=10&instance_id="+up.InstanceID, nil, nil)
		if r := raw.call("GET", base+"/wait?state=replacing&timeout=1", nil, nil); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "replacing") {
			t.Fatalf("wait for replacing: %d %s, want 400", r.code, r.body)
		}
		raw.must(200, "GET", base+"/wait?state=replaced&timeout=1&instance_id="+m.InstanceID, nil, nil)

		harness.Poll(t, "version 2 serves", 20*time.Second, func() (bool, string) {
			code, body, err := d.ViaProxy("repl", "/")
			return err == nil && code == 200 && strings.Contains(body, "version=2"), fmt.Sprint(code, body, err)
		})
	})

	t.Run("stopped machine", func(t *testing.T) {
		c.t, raw.t = t, t
		cfg := func(version string) map[string]any {
			return map[string]any{"image": ref, "env": map[string]string{"PORT": "8080", "APP_VERSION": version}}
		}
		var m types.Machine
		c.must(200, "POST", "/apps/repl-stopped/machines", map[string]any{"config": cfg("1")}, nil).decode(t, &m)
		base := "/apps/repl-stopped/machines/" + m.ID
		c.must(200, "GET", base+"/wait?state=started&timeout=30", nil, nil)
		c.must(200, "POST", base+"/stop", nil, nil)
		c.must(200, "GET", base+"/wait?state=stopped&timeout=30&instance_id="+m.InstanceID, nil, nil)

		// skip_launch: the new version is left stopped.
		var up types.Machine
		c.must(200, "POST", base, map[string]any{"config": cfg("2"), "skip_launch": true}, nil).decode(t, &up)
		if up.State != types.StateStopped || up.InstanceID == m.InstanceID || up.Config.Env["APP_VERSION"] != "2" {
			t.Fatalf("update with skip_launch answered %s, instance %s (was %s), env %v", up.State, up.InstanceID, m.InstanceID, up.Config.Env)
		}
		if len(up.Events) == 0 || up.Events[0].Type != "update" || up.Events[0].Status != types.StateReplacing {
			t.Fatalf("events = %+v", up.Events)
		}
		c.must(200, "GET", base+"/wait?state=stopped&timeout=5&instance_id="+up.InstanceID, nil, nil)
		time.Sleep(300 * time.Millisecond)
		var cur types.Machine
		c.must(200, "GET", base, nil, nil).decode(t, &cur)
		if cur.State != types.StateStopped || cur.InstanceID != up.InstanceID {
			t.Fatalf("after an update with skip_launch: %s %s, want stopped %s", cur.State, cur.InstanceID, up.InstanceID)
		}

		// Without skip_launch a machine that was not running stays
		// stopped too, as on Fly's hosts (docs/api.md); a start boots
		// the new version.
		var kept types.Machine
		c.must(200, "POST", base, map[string]any{"config": cfg("3")}, nil).decode(t, &kept)
		if kept.State != types.StateStopped || kept.InstanceID == up.InstanceID || kept.Config.Env["APP_VERSION"] != "3" {
			t.Fatalf("update of a stopped machine without skip_launch answered %s, instance %s, env %v; want stopped", kept.State, kept.InstanceID, kept.Config.Env)
		}
		if len(kept.Events) < 1 || kept.Events[0].Type != "update" || kept.Events[0].Status != types.StateReplacing {
			t.Fatalf("events = %+v", kept.Events)
		}
		c.must(200, "GET", base+"/wait?state=stopped&timeout=5&instance_id="+kept.InstanceID, nil, nil)
		var booted types.Machine
		c.must(200, "POST", base+"/start", nil, nil)
		c.must(200, "GET", base+"/wait?state=started&timeout=30&instance_id="+kept.InstanceID, nil, nil)
		c.must(200, "GET", base, nil, nil).decode(t, &booted)
		if booted.State != types.StateStarted || booted.Config.Env["APP_VERSION"] != "3" {
			t.Fatalf("after start: %s, env %v; want version 3 started", booted.State, booted.Config.Env)
		}
		c.must(200, "DELETE", base+"?force=true", nil, nil)
	})

	t.Run("files removed", func(t *testing.T) {
		c.t, raw.t = t, t
		cfg := web("1")
		cfg["files"] = []any{map[string]any{"guest_path": "/etc/app/motd", "raw_value": base64.StdEncoding.EncodeToString([]byte("hello from files"))}}
		var m types.Machine
		c.must(200, "POST", "/apps/repl-files/machines", map[string]any{"config": cfg}, nil).decode(t, &m)
		base := "/apps/repl-files/machines/" + m.ID
		c.must(200, "GET", base+"/wait?state=started&timeout=30", nil, nil)
		dir := filepath.Join(secrets.RunDirFor(d.DataDir), m.ID)
		served := func() {
			t.Helper()
			if b, err := os.ReadFile(filepath.Join(dir, "0")); err != nil || string(b) != "hello from files" {
				t.Fatalf("[[files]] on the host: %q %v", b, err)
			}
			harness.Poll(t, "the machine serves its file", 20*time.Second, func() (bool, string) {
				code, body, err := d.ViaProxy("repl-files", "/file?path=/etc/app/motd")
				return err == nil && code == 200 && body == "hello from files", fmt.Sprint(code, body, err)
			})
		}
		served()

		// A stopped machine needs no files: they are written afresh at
		// every boot.
		c.must(200, "POST", base+"/stop", nil, nil)
		c.must(200, "GET", base+"/wait?state=stopped&timeout=30&instance_id="+m.InstanceID, nil, nil)
		absent(t, dir)
		c.must(200, "POST", base+"/start", nil, nil)
		c.must(200, "GET", base+"/wait?state=started&timeout=30", nil, nil)
		served()

		c.must(200, "DELETE", base+"?force=true", nil, nil)
		c.must(200, "GET", base+"/wait?state=destroyed&timeout=10", nil, nil)
		absent(t, dir)
	})
}

func absent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", path, err)
	}
}

// watcher polls one machine in GET and in its app's list, recording each
// change of state, until stopped.
type watcher struct {
	ready chan struct{} // closed once the machine was seen in both
	done  chan struct{}
	out   chan watched
	probe chan [3]any // the proxy's answer while replacing
}

type watched struct {
	get, list []string // states in the order seen, repeats collapsed
	// The answer of the proxy to a request sent when the machine was
	// first seen replacing.
	proxyCode int
	proxyBody string
	proxyErr  error
}

// watch starts watching and returns once the machine's current state has
// been seen.
func watch(d *harness.Daemon, app, id string) *watcher {
	w := &watcher{ready: make(chan struct{}), done: make(chan struct{}), out: make(chan watched, 1), probe: make(chan [3]any, 1)}
	get := func(path string, v any) error {
		req, _ := http.NewRequest("GET", d.API+path, nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return json.Unmarshal(b, v)
	}
	add := func(states []string, s string) []string {
		if s != "" && (len(states) == 0 || states[len(states)-1] != s) {
			states = append(states, s)
		}
		return states
	}
	go func() {
		var res watched
		probed := false
		for {
			select {
			case <-w.done:
				if probed {
					p := <-w.probe
					res.proxyCode, res.proxyBody = p[0].(int), p[1].(string)
					res.proxyErr, _ = p[2].(error)
				}
				w.out <- res
				return
			default:
			}
			var m types.Machine
			if err := get("/v1/apps/"+app+"/machines/"+id, &m); err == nil {
				res.get = add(res.get, m.State)
				if m.State == types.StateReplacing && !probed {
					probed = true
					go func() {
						code, body, err := d.ViaProxy(app, "/")
						w.probe <- [3]any{code, body, err}
					}()
				}
			}
			var ms []types.Machine
			if err := get("/v1/apps/"+app+"/machines", &ms); err == nil {
				for _, x := range ms {
					if x.ID == id {
						res.list = add(res.list, x.State)
					}
				}
			}
			if len(res.get) > 0 && len(res.list) > 0 {
				select {
				case <-w.ready:
				default:
					close(w.ready)
				}
			}
		}
	}()
	select {
	case <-w.ready:
	case <-time.After(10 * time.Second): // the assertions will say what was seen
	}
	return w
}

// stop ends the watch after one last look and returns what it saw.
func (w *watcher) stop() watched {
	time.Sleep(20 * time.Millisecond)
	close(w.done)
	return <-w.out
}
