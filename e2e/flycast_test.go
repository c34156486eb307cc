package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestFlycast: app fcb (an HTTP service with force_https, two machines,
// auto_stop "stop", min 0) gets a Flycast address with `hangar ips
// allocate-v6 --private`; a machine of app fca calls http://fcb.flycast/
// through its own resolver and gets answers from both machines (through
// the proxy: load balanced, plain HTTP, Fly-Client-IP is the caller's
// 6PN address); with both stopped, a call wakes one (autostart). An app
// without a Flycast address does not resolve; releasing the address and
// deleting the app take the name away.
func TestFlycast(t *testing.T) {
	harness.RequireRoot(t)
	// Machines are stopped by the test, not by the autostop loop.
	t.Setenv("HANGAR_AUTOSTOP_INTERVAL", "10m")
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	for _, app := range []string{"fca", "fcb", "fcc"} {
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
	web := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopStop),
			Autostart: boolPtr(true), MinMachinesRunning: intPtr(0), Ports: []types.MachinePort{
				{Port: intPtr(80), Handlers: []string{"http"}, ForceHTTPS: true},
				{Port: intPtr(443), Handlers: []string{"tls", "http"}},
			}}}}
	b1, b2 := start("fcb", web), start("fcb", web)
	caller := start("fca", types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}})

	// inside asks the caller machine to resolve or fetch through its own
	// resolv.conf.
	inside := func(path string) (int, string) { return machineGet(caller, path) }
	// The caller has no checks: "started" does not mean it listens yet.
	harness.Poll(t, "caller machine answers", 20*time.Second, func() (bool, string) {
		code, body := inside("/healthz")
		return code == http.StatusOK, fmt.Sprint(code, " ", body)
	})
	resolve := func(name string) (int, string) { return inside("/resolve?name=" + url.QueryEscape(name)) }
	fetch := func(u string) (int, string) { return inside("/fetch?url=" + url.QueryEscape(u)) }

	// No Flycast address yet: the name does not resolve.
	if code, body := resolve("fcb.flycast"); code != http.StatusBadGateway || !strings.Contains(body, "no such host") {
		t.Fatalf("fcb.flycast before allocation: %d %s, want no such host", code, body)
	}
	if out, err := d.Hangar("ips", "allocate-v6", "-a", "fcb"); err == nil || !strings.Contains(out, "--private") {
		t.Fatalf("allocate-v6 without --private: %v %s, want an error pointing to --private", err, out)
	}
	out, err := d.Hangar("ips", "allocate-v6", "--private", "-a", "fcb")
	if err != nil {
		t.Fatalf("hangar ips allocate-v6 --private: %v %s", err, out)
	}
	out, err = d.Hangar("ips", "list", "-a", "fcb", "--json")
	var ips []types.IPAddress
	if err != nil || json.Unmarshal([]byte(out), &ips) != nil || len(ips) != 1 || ips[0].Type != "private_v6" || !strings.HasPrefix(ips[0].Address, "fdaa:") {
		t.Fatalf("hangar ips list: %v %s", err, out)
	}
	addr := ips[0].Address
	t.Logf("fcb's Flycast address: %s", addr)

	harness.Poll(t, "fcb.flycast resolves to the Flycast address", 15*time.Second, func() (bool, string) {
		code, body := resolve("fcb.flycast")
		return code == http.StatusOK && strings.Contains(body, `"`+addr+`"`), fmt.Sprint(code, body)
	})
	harness.Poll(t, "the proxy answers on fcb's Flycast address", 15*time.Second, func() (bool, string) {
		code, body := fetch("http://fcb.flycast/")
		return code == http.StatusOK && strings.Contains(body, "200 OK"), fmt.Sprint(code, body)
	})

	// Load balanced over both machines; plain HTTP although the service
	// has force_https (a redirect would have been followed to https and
	// failed on the self-signed certificate).
	seen := map[string]int{}
	for i := 0; i < 40 && (seen[b1.ID] == 0 || seen[b2.ID] == 0); i++ {
		code, body := fetch("http://fcb.flycast/")
		m := machineRE.FindStringSubmatch(body)
		if code != http.StatusOK || !strings.HasPrefix(body, "200 OK") || m == nil {
			t.Fatalf("request %d via fcb.flycast: %d %s", i, code, body)
		}
		seen[m[1]]++
	}
	if seen[b1.ID] == 0 || seen[b2.ID] == 0 {
		t.Fatalf("requests via Flycast reached %v; want both %s and %s", seen, b1.ID, b2.ID)
	}
	t.Logf("requests per machine: %v", seen)
	code, body := fetch("http://fcb.flycast/headers")
	for _, want := range []string{"Fly-Client-Ip: [" + caller.PrivateIP + "]", "X-Forwarded-Proto: [http]", "X-Forwarded-Port: [80]", "Fly-Request-Id:"} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("headers via Flycast: %d %s; want %q", code, body, want)
		}
	}
	// The address itself works too, with any Host.
	if code, body := fetch("http://[" + addr + "]/"); code != http.StatusOK || machineRE.FindString(body) == "" {
		t.Fatalf("by address: %d %s", code, body)
	}

	// Both machines stopped: a call through Flycast wakes one.
	for _, m := range []types.Machine{b1, b2} {
		if code, body := d.Call("POST", "/v1/apps/fcb/machines/"+m.ID+"/stop", nil); code != http.StatusOK {
			t.Fatalf("stop %s: %d %s", m.ID, code, body)
		}
		if code, body := d.Call("GET", "/v1/apps/fcb/machines/"+m.ID+"/wait?state=stopped&timeout=30", nil); code != http.StatusOK {
			t.Fatalf("machine %s did not stop: %d %s", m.ID, code, body)
		}
	}
	code, body = fetch("http://fcb.flycast/")
	woken := machineRE.FindStringSubmatch(body)
	if code != http.StatusOK || woken == nil {
		t.Fatalf("first call via Flycast with every machine stopped: %d %s", code, body)
	}
	if cur := machineState(t, d, "fcb", woken[1]); cur.State != types.StateStarted {
		t.Fatalf("the machine that answered is %s", cur.State)
	}

	// An app without a Flycast address has no name.
	if code, body := resolve("fcc.flycast"); code != http.StatusBadGateway || !strings.Contains(body, "no such host") {
		t.Fatalf("fcc.flycast: %d %s, want no such host", code, body)
	}

	// Released: the name goes and the address stops answering.
	if out, err := d.Hangar("ips", "release", addr, "-a", "fcb"); err != nil {
		t.Fatalf("hangar ips release: %v %s", err, out)
	}
	harness.Poll(t, "fcb.flycast gone after release", 15*time.Second, func() (bool, string) {
		code, body := resolve("fcb.flycast")
		return code == http.StatusBadGateway && strings.Contains(body, "no such host"), fmt.Sprint(code, body)
	})
	harness.Poll(t, "nothing answers on the released address", 15*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "80"), time.Second)
		if err == nil {
			c.Close()
			return false, "connected"
		}
		return true, err.Error()
	})

	// Deleting the app releases its address.
	if out, err := d.Hangar("ips", "allocate-v6", "--private", "-a", "fcb"); err != nil {
		t.Fatalf("allocate again: %v %s", err, out)
	}
	harness.Poll(t, "fcb.flycast back", 15*time.Second, func() (bool, string) {
		code, body := resolve("fcb.flycast")
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	if code, body := d.Call("DELETE", "/v1/apps/fcb", nil); code != http.StatusAccepted {
		t.Fatalf("delete fcb: %d %s", code, body)
	}
	harness.Poll(t, "fcb.flycast gone with the app", 15*time.Second, func() (bool, string) {
		code, body := resolve("fcb.flycast")
		return code == http.StatusBadGateway && strings.Contains(body, "no such host"), fmt.Sprint(code, body)
	})
}
