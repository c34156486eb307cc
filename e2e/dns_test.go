package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestPrivateDNS: machines resolve each other by .internal names through
// the resolv.conf the daemon gives them, and call each other by name.
// Two machines of app dnsa (plus one that opts out of DNS), one of dnsb.
// machineGet sends GET path to the test app of machine m, directly on its
// private address from the host, and returns status and body (0 and the
// error when the request failed).
func machineGet(m types.Machine, path string) (int, string) {
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(m.PrivateIP, "8080") + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPrivateDNS(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	ref := d.ImportTestApp()
	for _, app := range []string{"dnsa", "dnsb"} {
		if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			t.Fatalf("create app %s: %d %s", app, code, body)
		}
	}
	create := func(app string, skip bool) types.Machine {
		t.Helper()
		cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}}
		if skip {
			cfg.DNS = &types.DNSConfig{SkipRegistration: true}
		}
		code, body := d.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Config: &cfg, Region: "tst"})
		if code != http.StatusOK {
			t.Fatalf("create machine in %s: %d %s", app, code, body)
		}
		var m types.Machine
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if code, body := d.Call("GET", "/v1/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=30", nil); code != http.StatusOK {
			t.Fatalf("machine %s did not start: %d %s", m.ID, code, body)
		}
		return m
	}
	a1, a2 := create("dnsa", false), create("dnsa", false)
	hidden := create("dnsa", true)
	b1 := create("dnsb", false)

	// inside asks a machine (directly on its private address, from the
	// host) to do something through its own resolver.
	inside := func(m types.Machine, path string) (int, string) { return machineGet(m, path) }
	resolve := func(m types.Machine, name string) ([]string, string) {
		code, body := inside(m, "/resolve?name="+url.QueryEscape(name))
		if code != http.StatusOK {
			return nil, fmt.Sprint(code, " ", body)
		}
		var out struct{ Addrs []string }
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			return nil, body
		}
		var v6 []string
		for _, a := range out.Addrs {
			if strings.Contains(a, ":") {
				v6 = append(v6, a)
			}
		}
		slices.Sort(v6)
		return v6, body
	}
	wantA := []string{a1.PrivateIP, a2.PrivateIP}
	slices.Sort(wantA)

	// The resolv.conf of a machine points at the bridge, where the
	// daemon's DNS answers.
	harness.Poll(t, "dnsa.internal from inside the dnsb machine", 15*time.Second, func() (bool, string) {
		got, raw := resolve(b1, "dnsa.internal")
		return slices.Equal(got, wantA), raw
	})
	if strings.Contains(fmt.Sprint(resolve(b1, "dnsa.internal")), hidden.PrivateIP) {
		t.Fatalf("a machine with dns.skip_registration is listed")
	}
	if got, raw := resolve(a1, a2.ID+".vm.dnsa.internal"); !slices.Equal(got, []string{a2.PrivateIP}) {
		t.Fatalf("%s.vm.dnsa.internal = %s, want %s", a2.ID, raw, a2.PrivateIP)
	}
	if got, raw := resolve(a1, "tst.dnsb.internal"); !slices.Equal(got, []string{b1.PrivateIP}) {
		t.Fatalf("tst.dnsb.internal = %s, want %s", raw, b1.PrivateIP)
	}
	if code, body := inside(a1, "/resolve?type=txt&name=_apps.internal"); code != http.StatusOK || !strings.Contains(body, "dnsa,dnsb") {
		t.Fatalf("_apps.internal: %d %s", code, body)
	}
	if code, body := inside(a1, "/resolve?name=nosuch.internal"); code != http.StatusBadGateway || !strings.Contains(body, "no such host") {
		t.Fatalf("nosuch.internal: %d %s, want no such host", code, body)
	}

	// One machine calls another by name over HTTP.
	target := "http://" + b1.ID + ".vm.dnsb.internal:8080/"
	code, body := inside(a1, "/fetch?url="+url.QueryEscape(target))
	if code != http.StatusOK || !strings.Contains(body, "200 OK") || !strings.Contains(body, "machine="+b1.ID) {
		t.Fatalf("fetch %s from %s: %d %s", target, a1.ID, code, body)
	}

	// A stopped machine leaves the answers.
	if code, body := d.Call("POST", "/v1/apps/dnsa/machines/"+a2.ID+"/stop", nil); code != http.StatusOK {
		t.Fatalf("stop: %d %s", code, body)
	}
	harness.Poll(t, "the stopped machine leaves dnsa.internal", 15*time.Second, func() (bool, string) {
		got, raw := resolve(b1, "dnsa.internal")
		return slices.Equal(got, []string{a1.PrivateIP}), raw
	})
}
