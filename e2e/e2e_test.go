// Package e2e drives the real hangar binary the way a user does: it starts
// `hangar server` on a temp data dir and free ports, deploys the example
// app with `hangar deploy`, and talks to the proxy and the API over HTTP.
// Needs root (containers, network namespaces) and runc or crun.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// daemon is one running `hangar server`.
type daemon struct {
	t       *testing.T
	bin     string
	dataDir string
	args    []string
	cmd     *exec.Cmd
	api     string
	http    string
	token   string
	logf    *os.File
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hangar")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/hangar")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hangar: %v\n%s", err, out)
	}
	return bin
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("end-to-end tests need root (containers, network namespaces)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		if _, err := exec.LookPath("crun"); err != nil {
			t.Skip("end-to-end tests need crun or runc: apt-get install -y crun runc")
		}
	}
}

func startDaemon(t *testing.T, bin string) *daemon {
	t.Helper()
	n := rand.Intn(200) + 20
	d := &daemon{t: t, bin: bin, dataDir: t.TempDir()}
	bridge := fmt.Sprintf("hge%04x", rand.Intn(0xffff))
	d.args = []string{"server", "--data-dir", d.dataDir, "--api-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--domain", "test.internal", "--region", "tst", "--bridge", bridge,
		"--subnet", fmt.Sprintf("10.%d.%d.0/24", 100+rand.Intn(50), n), "--subnet6", fmt.Sprintf("fdaa:0:%x::/64", 0x1000+rand.Intn(0xe000))}
	var err error
	d.logf, err = os.Create(filepath.Join(d.dataDir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	d.start()
	t.Cleanup(func() {
		// Destroy every app (and so every machine), then the daemon and
		// its bridge, even when the test failed.
		var res struct {
			Apps []types.App `json:"apps"`
		}
		if d.cmd != nil && d.get("/v1/apps", &res) == nil {
			for _, a := range res.Apps {
				if code, body := d.call("DELETE", "/v1/apps/"+a.Name, nil); code != http.StatusAccepted {
					t.Errorf("cleanup: delete app %s: %d %s", a.Name, code, body)
				}
			}
		}
		d.stop(syscall.SIGTERM)
		_ = exec.Command("ip", "link", "del", bridge).Run()
		if t.Failed() {
			b, _ := os.ReadFile(d.logf.Name())
			t.Logf("daemon log:\n%s", b)
		}
		d.logf.Close()
		if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte("hangar-")) {
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "hangar-") {
					id := strings.TrimPrefix(strings.Fields(line)[0], "hangar-")
					if _, err := os.Stat(filepath.Join(d.dataDir, "machines", id)); err == nil {
						t.Errorf("network namespace of machine %s left behind", id)
					}
				}
			}
		}
	})
	return d
}

func (d *daemon) start() {
	t := d.t
	_ = os.Remove(filepath.Join(d.dataDir, "api-addr"))
	_ = os.Remove(filepath.Join(d.dataDir, "http-addr"))
	d.cmd = exec.Command(d.bin, d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err1 := os.ReadFile(filepath.Join(d.dataDir, "api-addr"))
		h, err2 := os.ReadFile(filepath.Join(d.dataDir, "http-addr"))
		if err1 == nil && err2 == nil {
			d.api, d.http = "http://"+strings.TrimSpace(string(a)), "http://"+strings.TrimSpace(string(h))
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.logf.Name())
			t.Fatalf("daemon did not start:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	d.token = strings.TrimSpace(string(tok))
	if fi, _ := os.Stat(filepath.Join(d.dataDir, "admin-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-token mode = %v, want 0600", fi.Mode().Perm())
	}
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	_ = d.cmd.Wait()
	d.cmd = nil
}

// hangar runs the CLI against this daemon.
func (d *daemon) hangar(args ...string) (string, error) {
	cmd := exec.Command(d.bin, args...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "HANGAR_DATA_DIR="+d.dataDir, "HANGAR_API_URL=", "HANGAR_API_TOKEN=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) call(method, path string, body any) (int, string) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, _ := json.Marshal(b)
		rd = bytes.NewReader(buf)
	}
	req, _ := http.NewRequest(method, d.api+path, rd)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (d *daemon) get(path string, out any) error {
	code, body := d.call("GET", path, nil)
	if code != 200 {
		return fmt.Errorf("GET %s: %d %s", path, code, body)
	}
	return json.Unmarshal([]byte(body), out)
}

// viaProxy sends a request for app through the proxy.
func (d *daemon) viaProxy(app, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", d.http+path, nil)
	req.Host = app + ".test.internal"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (d *daemon) machines(app string) []types.Machine {
	var ms []types.Machine
	if err := d.get("/v1/apps/"+app+"/machines", &ms); err != nil {
		d.t.Fatal(err)
	}
	return ms
}

func countEvents(m types.Machine, typ string) int {
	n := 0
	for _, e := range m.Events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func poll(t *testing.T, what string, timeout time.Duration, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := f()
		if ok {
			return
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v (last: %s)", what, timeout, last)
}

// TestDeployKillRestart is the foundation's promise: deploy the example,
// get 200 through the proxy, kill -9 the daemon, start it again, and find the
// same machine still started, never restarted, serving again.
func TestDeployKillRestart(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	d := startDaemon(t, bin)
	out, err := d.hangar("deploy", "-c", "examples/hello/fly.toml")
	if err != nil {
		t.Fatalf("deploy failed: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Visit your app at http://hello.test.internal:") {
		t.Fatalf("deploy did not print the URL:\n%s", out)
	}
	ms := d.machines("hello")
	if len(ms) != 1 || ms[0].State != types.StateStarted {
		t.Fatalf("machines after deploy: %+v", ms)
	}
	m := ms[0]
	code, body, err := d.viaProxy("hello", "/")
	if err != nil || code != 200 || !strings.Contains(body, m.ID) || !strings.Contains(body, "region:  tst") {
		t.Fatalf("through the proxy: %d %q %v", code, body, err)
	}
	status, err := d.hangar("status", "-a", "hello", "--json")
	if err != nil || !strings.Contains(status, m.ID) || !strings.Contains(status, `"status": "passing"`) {
		t.Fatalf("status: %v\n%s", err, status)
	}

	d.stop(syscall.SIGKILL)
	// While the daemon is down the machine keeps serving on its own address.
	d.start()
	ms2 := d.machines("hello")
	if len(ms2) != 1 || ms2[0].ID != m.ID || ms2[0].State != types.StateStarted || ms2[0].InstanceID != m.InstanceID {
		t.Fatalf("after restart: %+v, want machine %s started", ms2, m.ID)
	}
	if countEvents(ms2[0], "start") != 1 || countEvents(ms2[0], "exit") != 0 {
		t.Fatalf("machine was restarted: events %+v", ms2[0].Events)
	}
	poll(t, "proxy serves again after the restart", 10*time.Second, func() (bool, string) {
		code, body, err := d.viaProxy("hello", "/")
		return err == nil && code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
	})
	logs, err := d.hangar("logs", "-a", "hello")
	if err != nil || strings.Count(logs, "hello listening on :8080") != 1 {
		t.Fatalf("logs should show one start of the app: %v\n%s", err, logs)
	}
}

// importTestApp builds the test app into an image and imports it with the CLI.
func importTestApp(t *testing.T, d *daemon) string {
	t.Helper()
	img, err := image.BuildGo(context.Background(), testapp.Source(), image.GoBuildOptions{Name: "testapp"})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "testapp.tar")
	if err := image.WriteOCIArchive(img, "testapp:e2e", archive); err != nil {
		t.Fatal(err)
	}
	out, err := d.hangar("image", "import", archive, "--ref", "testapp:e2e")
	if err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}
	var imgs []image.Image
	if err := d.get("/v1/images", &imgs); err != nil {
		t.Fatal(err)
	}
	for _, i := range imgs {
		if strings.Contains(i.Ref, "testapp") {
			return i.Ref
		}
	}
	t.Fatalf("imported image not listed: %+v", imgs)
	return ""
}

func TestRestartPolicyAndChecks(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	d := startDaemon(t, bin)
	ref := importTestApp(t, d)
	if code, body := d.call("POST", "/v1/apps", types.CreateAppRequest{AppName: "pol"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}

	t.Run("on-failure with max retries", func(t *testing.T) {
		cfg := types.MachineConfig{Image: ref, Init: types.MachineInit{Cmd: []string{"exit", "3"}},
			Restart: &types.MachineRestart{Policy: types.RestartOnFailure, MaxRetries: 2}}
		code, body := d.call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		poll(t, "three exits then stopped", 30*time.Second, func() (bool, string) {
			var cur types.Machine
			if err := d.get("/v1/apps/pol/machines/"+m.ID, &cur); err != nil {
				return false, err.Error()
			}
			return countEvents(cur, "exit") == 3 && cur.State == types.StateStopped, fmt.Sprintf("%s, %d exits", cur.State, countEvents(cur, "exit"))
		})
		var cur types.Machine
		_ = d.get("/v1/apps/pol/machines/"+m.ID, &cur)
		ev := cur.Events[0].Request["exit_event"].(map[string]any)
		if ev["exit_code"].(float64) != 3 || ev["restarting"].(bool) {
			t.Fatalf("last exit event = %+v", ev)
		}
		// It stays stopped: no fourth run.
		time.Sleep(500 * time.Millisecond)
		_ = d.get("/v1/apps/pol/machines/"+m.ID, &cur)
		if countEvents(cur, "exit") != 3 {
			t.Fatalf("restarted beyond max_retries: %d exits", countEvents(cur, "exit"))
		}
	})

	t.Run("always restarts a crashed server", func(t *testing.T) {
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
			Restart:  &types.MachineRestart{Policy: types.RestartAlways},
			Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(time.Second)}}}}}
		code, body := d.call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
		if code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		var m types.Machine
		_ = json.Unmarshal([]byte(body), &m)
		poll(t, "serving", 15*time.Second, func() (bool, string) {
			code, body, err := d.viaProxy("pol", "/")
			return code == 200 && strings.Contains(body, m.ID), fmt.Sprint(code, body, err)
		})
		_, _, _ = d.viaProxy("pol", "/crash")
		poll(t, "restarted after the crash and serving again", 15*time.Second, func() (bool, string) {
			var cur types.Machine
			_ = d.get("/v1/apps/pol/machines/"+m.ID, &cur)
			code, body, _ := d.viaProxy("pol", "/")
			return countEvents(cur, "exit") == 1 && cur.State == types.StateStarted && code == 200, fmt.Sprint(cur.State, code, body)
		})
		if code, body := d.call("DELETE", "/v1/apps/pol/machines/"+m.ID+"?force=true", nil); code != 200 {
			t.Fatalf("destroy: %d %s", code, body)
		}
	})

	t.Run("failing check gets no traffic", func(t *testing.T) {
		mk := func(unhealthy string) types.Machine {
			cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080", "UNHEALTHY": unhealthy},
				Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond)}}}}}
			code, body := d.call("POST", "/v1/apps/pol/machines", types.CreateMachineRequest{Config: &cfg})
			if code != 200 {
				t.Fatalf("create: %d %s", code, body)
			}
			var m types.Machine
			_ = json.Unmarshal([]byte(body), &m)
			return m
		}
		good, bad := mk("0"), mk("1")
		poll(t, "good machine serving", 15*time.Second, func() (bool, string) {
			code, body, err := d.viaProxy("pol", "/")
			return code == 200 && strings.Contains(body, good.ID), fmt.Sprint(code, body, err)
		})
		for i := 0; i < 30; i++ {
			code, body, _ := d.viaProxy("pol", "/")
			if code != 200 || strings.Contains(body, bad.ID) {
				t.Fatalf("request %d: %d %q; the unhealthy machine %s must get nothing", i, code, body, bad.ID)
			}
		}
		var cur types.Machine
		_ = d.get("/v1/apps/pol/machines/"+bad.ID, &cur)
		if len(cur.Checks) != 1 || cur.Checks[0].Status != types.CheckCritical || !strings.Contains(cur.Checks[0].Output, "503") {
			t.Fatalf("bad machine checks = %+v", cur.Checks)
		}
		// The good machine turns sick: it leaves rotation; well again: it returns.
		_, _, _ = d.viaProxy("pol", "/sick")
		poll(t, "no healthy machine: 503", 10*time.Second, func() (bool, string) {
			code, body, _ := d.viaProxy("pol", "/")
			return code == 503 && strings.Contains(body, "no started machine with passing health checks"), fmt.Sprint(code, body)
		})
	})
}

func TestBadInputChangesNothing(t *testing.T) {
	requireRoot(t)
	bin := buildBinary(t)
	d := startDaemon(t, bin)
	bad := filepath.Join(t.TempDir(), "fly.toml")
	if err := os.WriteFile(bad, []byte("app = \"broken\"\n[http_service]\ninternal_port = \"eighty\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := d.hangar("deploy", "-c", bad)
	if err == nil || !strings.Contains(out, "fly.toml:3") {
		t.Fatalf("malformed fly.toml: want an error with its line, got %v\n%s", err, out)
	}
	code, body := d.call("GET", "/v1/apps/broken", nil)
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
		code, body := d.call("POST", "/v1/apps", c.body)
		if code != 400 || !strings.Contains(body, c.want) {
			t.Errorf("POST /v1/apps %q: %d %s, want 400 mentioning %q", c.body, code, body, c.want)
		}
	}
	if code, body := d.call("POST", "/v1/apps", strings.Repeat(" ", 2<<20)+"{}"); code != 413 {
		t.Errorf("huge body: %d %s, want 413", code, body)
	}
	var res struct {
		Apps []types.App `json:"apps"`
	}
	if err := d.get("/v1/apps", &res); err != nil || len(res.Apps) != 0 {
		t.Fatalf("apps after bad input: %+v %v", res.Apps, err)
	}
	// Auth: no token, a wrong token.
	req, _ := http.NewRequest("GET", d.api+"/v1/apps", nil)
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
	if code, body := d.call("POST", "/v1/apps", types.CreateAppRequest{AppName: "w"}); code != 201 {
		t.Fatalf("create app: %d %s", code, body)
	}
	if code, body := d.call("GET", "/v1/apps/w/machines/00000000000000/wait?state=started&timeout=1", nil); code != 404 {
		t.Fatalf("wait on a missing machine: %d %s", code, body)
	}
	if code, body := d.call("GET", "/v1/apps/w/machines/x/wait?timeout=99", nil); code != 400 {
		t.Fatalf("wait with timeout 99: %d %s", code, body)
	}
}
