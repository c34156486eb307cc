package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// proxyDaemon starts a daemon whose autostop loop runs every 300ms, with
// the test app imported and app created.
func proxyDaemon(t *testing.T, app string) (*harness.Daemon, string) {
	harness.RequireRoot(t)
	t.Setenv("HANGAR_AUTOSTOP_INTERVAL", "300ms")
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	return d, ref
}

func createMachine(t *testing.T, d *harness.Daemon, app string, cfg types.MachineConfig) types.Machine {
	t.Helper()
	code, body := d.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg})
	if code != 200 {
		t.Fatalf("create machine: %d %s", code, body)
	}
	var m types.Machine
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func machineState(t *testing.T, d *harness.Daemon, app, id string) types.Machine {
	t.Helper()
	var m types.Machine
	if err := d.Get("/v1/apps/"+app+"/machines/"+id, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// viaProxy sends a request through the proxy with extra headers.
func viaProxy(d *harness.Daemon, app, path string, hdr map[string]string) (int, string, error) {
	req, _ := http.NewRequest("GET", d.HTTP+path, nil)
	req.Host = app + ".test.internal"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func boolPtr(b bool) *bool { return &b }
func intPtr(n int) *int    { return &n }

func autostopPtr(a types.Autostop) *types.Autostop { return &a }

var machineRE = regexp.MustCompile(`machine=([0-9a-f]+)`)

// Two machines with hard_limit 1 and four concurrent slow requests: none
// is refused (the ones over the limit wait in the queue), no machine ever
// has two at once, and both machines take work.
func TestProxyLeastLoadedAndHardLimitQueue(t *testing.T) {
	d, ref := proxyDaemon(t, "lb")
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff),
			Concurrency: &types.MachineServiceConcurrency{Type: "requests", SoftLimit: 1, HardLimit: 1}}}}
	m1, m2 := createMachine(t, d, "lb", cfg), createMachine(t, d, "lb", cfg)
	for _, m := range []types.Machine{m1, m2} {
		id := m.ID
		harness.Poll(t, "machine "+id+" serving", 20*time.Second, func() (bool, string) {
			code, body, err := viaProxy(d, "lb", "/", map[string]string{"Fly-Force-Instance-Id": id})
			return code == 200 && strings.Contains(body, id), fmt.Sprint(code, body, err)
		})
	}
	type result struct {
		body string
		code int
	}
	done := make(chan result, 4)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := viaProxy(d, "lb", "/sleep?d=700ms", nil)
			if err != nil {
				body = err.Error()
			}
			done <- result{body, code}
		}()
	}
	wg.Wait()
	close(done)
	seen := map[string]int{}
	for r := range done {
		if r.code != 200 || !strings.Contains(r.body, "inflight=1") {
			t.Fatalf("%d %q: every request must be served, one at a time per machine", r.code, r.body)
		}
		seen[machineRE.FindStringSubmatch(r.body)[1]]++
	}
	if seen[m1.ID] == 0 || seen[m2.ID] == 0 {
		t.Fatalf("requests per machine %v; least-loaded must use both", seen)
	}
}

// A failing check takes a machine out of rotation within its interval; it
// returns once the check passes again. The API shows the check status.
func TestProxyCheckRotation(t *testing.T) {
	d, ref := proxyDaemon(t, "hc")
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff),
			Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(300 * time.Millisecond), Timeout: types.DurationPtr(time.Second)}}}}}
	a, b := createMachine(t, d, "hc", cfg), createMachine(t, d, "hc", cfg)
	both := func() (bool, string) {
		seen := map[string]bool{}
		for i := 0; i < 20; i++ {
			_, body, _ := viaProxy(d, "hc", "/", nil)
			if m := machineRE.FindStringSubmatch(body); m != nil {
				seen[m[1]] = true
			}
		}
		return seen[a.ID] && seen[b.ID], fmt.Sprint(seen)
	}
	harness.Poll(t, "both machines in rotation", 30*time.Second, both)
	code, body, err := viaProxy(d, "hc", "/sick?d=3s", map[string]string{"Fly-Force-Instance-Id": a.ID})
	if code != 200 || err != nil {
		t.Fatalf("make %s sick: %d %s %v", a.ID, code, body, err)
	}
	harness.Poll(t, "sick machine out of rotation", 10*time.Second, func() (bool, string) {
		m := machineState(t, d, "hc", a.ID)
		if len(m.Checks) != 1 || m.Checks[0].Status != types.CheckCritical {
			return false, fmt.Sprint(m.Checks)
		}
		for i := 0; i < 20; i++ {
			code, body, _ := viaProxy(d, "hc", "/", nil)
			if code != 200 || !strings.Contains(body, b.ID) {
				return false, fmt.Sprint(code, body)
			}
		}
		return true, ""
	})
	// hangar status shows the failing check too.
	if out, err := d.Hangar("status", "-a", "hc"); err != nil || !regexp.MustCompile(a.ID+`.*\b0/1\b`).MatchString(out) {
		t.Fatalf("hangar status should show machine %s with 0/1 checks passing: %v\n%s", a.ID, err, out)
	}
	harness.Poll(t, "recovered machine back in rotation", 15*time.Second, func() (bool, string) {
		m := machineState(t, d, "hc", a.ID)
		if len(m.Checks) != 1 || m.Checks[0].Status != types.CheckPassing {
			return false, fmt.Sprint(m.Checks)
		}
		return both()
	})
}

// An app whose only machine autostop stopped wakes on the first request,
// and that request succeeds.
func TestProxyWakesStoppedApp(t *testing.T) {
	d, ref := proxyDaemon(t, "zz")
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopStop),
			Autostart: boolPtr(true), MinMachinesRunning: intPtr(0)}}}
	m := createMachine(t, d, "zz", cfg)
	harness.Poll(t, "idle machine stopped by autostop", 20*time.Second, func() (bool, string) {
		cur := machineState(t, d, "zz", m.ID)
		return cur.State == types.StateStopped, cur.State
	})
	code, body, err := viaProxy(d, "zz", "/", nil)
	if err != nil || code != 200 || !strings.Contains(body, m.ID) {
		t.Fatalf("first request to a stopped app: %d %q %v", code, body, err)
	}
	if cur := machineState(t, d, "zz", m.ID); cur.State != types.StateStarted || harness.CountEvents(cur, "start") < 2 {
		t.Fatalf("after the wake: %s, %d start events", cur.State, harness.CountEvents(cur, "start"))
	}
	// With auto_start_machines off, a stopped app is not woken.
	cfg.Services[0].Autostart = boolPtr(false)
	code, body = d.Call("POST", "/v1/apps/zz/machines/"+m.ID, types.CreateMachineRequest{Config: &cfg})
	if code != 200 {
		t.Fatalf("update: %d %s", code, body)
	}
	harness.Poll(t, "stopped again", 20*time.Second, func() (bool, string) {
		cur := machineState(t, d, "zz", m.ID)
		return cur.State == types.StateStopped, cur.State
	})
	code, body, _ = viaProxy(d, "zz", "/", nil)
	if code != 503 || !strings.Contains(body, "auto_start_machines") {
		t.Fatalf("autostart off: %d %q", code, body)
	}
}

// Suspend (autostop = "suspend") then a request: the machine resumes with
// its memory, so the test app's hit counter continues.
func TestProxySuspendResumeKeepsMemory(t *testing.T) {
	d, ref := proxyDaemon(t, "sus")
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopSuspend), MinMachinesRunning: intPtr(0)}}}
	m := createMachine(t, d, "sus", cfg)
	hitsRE := regexp.MustCompile(`hits=(\d+)`)
	var last string
	for i := 0; i < 3; i++ {
		harness.Poll(t, "serving", 20*time.Second, func() (bool, string) {
			code, body, err := viaProxy(d, "sus", "/", nil)
			if code == 200 {
				last = hitsRE.FindStringSubmatch(body)[1]
			}
			return code == 200, fmt.Sprint(code, body, err)
		})
	}
	harness.Poll(t, "idle machine suspended by autostop", 20*time.Second, func() (bool, string) {
		cur := machineState(t, d, "sus", m.ID)
		return cur.State == types.StateSuspended, cur.State
	})
	code, body, err := viaProxy(d, "sus", "/", nil)
	if err != nil || code != 200 {
		t.Fatalf("request to a suspended app: %d %q %v", code, body, err)
	}
	var prev int
	fmt.Sscan(last, &prev)
	if want := fmt.Sprintf("hits=%d", prev+1); !strings.Contains(body, want) {
		t.Fatalf("after resume: %q, want %s (memory kept across suspend)", body, want)
	}
	if cur := machineState(t, d, "sus", m.ID); cur.State != types.StateStarted {
		t.Fatalf("after the wake: %s", cur.State)
	}
}

// Stopping a machine lets its in-flight request finish first.
func TestProxyStopFinishesInflight(t *testing.T) {
	d, ref := proxyDaemon(t, "dr")
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		StopConfig: &types.StopConfig{Timeout: types.DurationPtr(10 * time.Second)},
		Services:   []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Autostart: boolPtr(false)}}}
	m := createMachine(t, d, "dr", cfg)
	harness.Poll(t, "serving", 20*time.Second, func() (bool, string) {
		code, body, err := viaProxy(d, "dr", "/", nil)
		return code == 200, fmt.Sprint(code, body, err)
	})
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, body, err := viaProxy(d, "dr", "/sleep?d=2s", nil)
		res <- result{code, body, err}
	}()
	harness.Poll(t, "slow request in flight", 10*time.Second, func() (bool, string) {
		code, body, err := viaProxy(d, "dr", "/inflight", nil)
		return code == 200 && strings.Contains(body, "inflight=1"), fmt.Sprint(code, body, err)
	})
	stopped := make(chan string, 1)
	go func() {
		code, body := d.Call("POST", "/v1/apps/dr/machines/"+m.ID+"/stop", nil)
		stopped <- fmt.Sprint(code, " ", body)
	}()
	r := <-res
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, "slept 2s") {
		t.Fatalf("in-flight request during stop: %d %q %v", r.code, r.body, r.err)
	}
	if s := <-stopped; !strings.HasPrefix(s, "200") {
		t.Fatalf("stop: %s", s)
	}
	if cur := machineState(t, d, "dr", m.ID); cur.State != types.StateStopped {
		t.Fatalf("after stop: %s", cur.State)
	}
	code, body, _ := viaProxy(d, "dr", "/", nil)
	if code != 503 {
		t.Fatalf("stopped machine with autostart off: %d %q", code, body)
	}
}
