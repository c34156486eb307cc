package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestFlycastBesideWildcardListener (issue 13, item 18): another process
// (the test) holds port 80 on every address, IPv4 and IPv6, and answers
// "not hangar"; app fwb's Flycast port 80 is still served by Hangar, to a
// machine of the org and to the host, and still is after a reload (the
// new daemon serves the redirect), with no call dropped across it.
func TestFlycastBesideWildcardListener(t *testing.T) {
	harness.RequireRoot(t)
	var others []net.Listener
	for _, l := range []struct{ network, addr string }{{"tcp6", "[::]:80"}, {"tcp4", "0.0.0.0:80"}} {
		ln, err := net.Listen(l.network, l.addr)
		if errors.Is(err, syscall.EADDRINUSE) {
			t.Skipf("cannot hold %s for the test: something on this host already listens on port 80 (%v); stop it to run this test", l.addr, err)
		}
		if err != nil {
			t.Fatalf("listen %s: %v", l.addr, err)
		}
		t.Cleanup(func() { ln.Close() })
		others = append(others, ln)
	}
	for _, ln := range others {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "not hangar\n")
		}), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	for _, app := range []string{"fwa", "fwb"} {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			t.Fatalf("create app %s: %d %s", app, code, body)
		}
	}
	start := func(app string, cfg types.MachineConfig) types.Machine {
		t.Helper()
		m := createMachine(t, d, app, cfg)
		if code, body := d.Call("GET", "/v1/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=30", nil); code != http.StatusOK {
			t.Fatalf("machine %s did not start: %d %s", m.ID, code, body)
		}
		return m
	}
	web := start("fwb", types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Ports: []types.MachinePort{
			{Port: intPtr(80), Handlers: []string{"http"}},
		}}}})
	caller := start("fwa", types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}})
	harness.Poll(t, "caller machine answers", 20*time.Second, func() (bool, string) {
		code, body := machineGet(caller, "/healthz")
		return code == http.StatusOK, fmt.Sprint(code, " ", body)
	})
	if out, err := d.Hangar("ips", "allocate-v6", "--private", "-a", "fwb"); err != nil {
		t.Fatalf("hangar ips allocate-v6 --private: %v %s", err, out)
	}
	var ips []types.IPAddress
	if out, err := d.Hangar("ips", "list", "-a", "fwb", "--json"); err != nil || json.Unmarshal([]byte(out), &ips) != nil || len(ips) != 1 {
		t.Fatalf("hangar ips list: %v %s", err, out)
	}
	addr := ips[0].Address
	u := "http://" + net.JoinHostPort(addr, "80") + "/"
	t.Logf("fwb's Flycast address: %s", addr)

	fromMachine := func(path string) (bool, string) {
		code, body := machineGet(caller, "/fetch?url="+url.QueryEscape(u+path))
		return code == http.StatusOK && strings.HasPrefix(body, "200 OK") && strings.Contains(body, "machine="+web.ID), fmt.Sprint(code, " ", body)
	}
	host := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	fromHost := func() (bool, string) {
		resp, err := host.Get(u)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), "machine="+web.ID), fmt.Sprint(resp.StatusCode, " ", string(b))
	}
	check := func(when string) {
		t.Helper()
		harness.Poll(t, when+": a machine of the org gets fwb's answer on "+u, 20*time.Second, func() (bool, string) { return fromMachine("") })
		harness.Poll(t, when+": the host gets fwb's answer on "+u, 20*time.Second, fromHost)
		// Settled: every call is Hangar's, none the other listener's.
		for i := 0; i < 5; i++ {
			if ok, got := fromMachine(""); !ok {
				t.Fatalf("%s: call %d from machine %s: %s", when, i, caller.ID, got)
			}
			if ok, got := fromHost(); !ok {
				t.Fatalf("%s: call %d from the host: %s", when, i, got)
			}
		}
		_, body := machineGet(caller, "/fetch?url="+url.QueryEscape(u+"headers"))
		for _, want := range []string{"Fly-Client-Ip: [" + caller.PrivateIP + "]", "X-Forwarded-Port: [80]"} {
			if !strings.Contains(body, want) {
				t.Fatalf("%s: headers via Flycast: %s; want %q", when, body, want)
			}
		}
	}
	check("beside the wildcard listener")

	// A reload drops no Flycast call: calls from the host all through it,
	// and one in flight across the handover.
	stop := make(chan struct{})
	type result struct {
		calls int
		fails []string
	}
	loop := make(chan result, 1)
	go func() {
		var r result
		for {
			select {
			case <-stop:
				loop <- r
				return
			default:
			}
			r.calls++
			if ok, got := fromHost(); !ok {
				r.fails = append(r.fails, got)
			}
		}
	}()
	long := make(chan string, 1)
	go func() {
		resp, err := host.Get(u + "sleep?d=1500ms")
		if err != nil {
			long <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		long <- fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(b)))
	}()
	time.Sleep(300 * time.Millisecond)
	pid := d.Reload()
	time.Sleep(500 * time.Millisecond) // calls go on through the new daemon
	close(stop)
	r := <-loop
	if len(r.fails) > 0 || r.calls == 0 {
		t.Errorf("across the reload: %d of %d Flycast calls from the host failed: %q", len(r.fails), r.calls, r.fails)
	}
	if got := <-long; !strings.HasPrefix(got, "200 slept 1.5s") {
		t.Errorf("a Flycast call in flight across the reload: %s", got)
	}
	t.Logf("reloaded: daemon %d; %d Flycast calls from the host during the reload", pid, r.calls)
	check("after a reload")
}
