package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// edgeCluster starts three hosts, a and b in fra and c in iad, as one
// cluster (a --cluster-init, b and c --join): one etcd, the WireGuard
// mesh, and the edge across hosts. Every host has the test app's image.
func edgeCluster(t *testing.T) (*harness.Cluster, string) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "c", Region: "iad"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			args := []string{"--member-name", h.Name, "--advertise-addr", h.Addr}
			if h.Name == "a" {
				return append(args, "--cluster-init")
			}
			// The API, not the CLI: the harness finds a host by its
			// fixed API port, maybe before its api-addr file (which the
			// CLI reads) is written.
			code, body := c.Host("a").Call("POST", "/v1/cluster/join-tokens", nil)
			var tok types.JoinTokenResponse
			if code != http.StatusCreated || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
				t.Fatalf("join token from a: %d %s", code, body)
			}
			token := tok.Token
			return append(args, "--join", "https://"+net.JoinHostPort(c.Host("a").Addr, "4281"), "--join-token", token)
		},
	})
	// Every host imports the image at once (each has its own store).
	refs := make([]string, len(c.Hosts()))
	var wg sync.WaitGroup
	for i, h := range c.Hosts() {
		wg.Add(1)
		go func() { defer wg.Done(); refs[i] = h.ImportTestApp() }()
	}
	wg.Wait()
	for i, h := range c.Hosts() {
		if refs[i] == "" {
			t.Fatalf("host %s: the test app's image was not imported", h.Name)
		}
	}
	return c, refs[0]
}

// edgeGet sends GET path for app through host h's edge (its public HTTP
// listener).
func edgeGet(h *harness.Host, app, path string, timeout time.Duration) (int, string, error) {
	req, _ := http.NewRequest("GET", h.HTTPURL()+path, nil)
	req.Host = app + ".test.internal"
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// placeOn creates a machine of app in region and checks that it is on
// host on. Placement has no host pin: the hosts in drain (which must have
// no machines: a drain moves them) are drained meanwhile, and otherwise
// placement's spread (fewest machines of the app) decides.
func placeOn(t *testing.T, c *harness.Cluster, on, region, app string, cfg types.MachineConfig, drain ...string) types.Machine {
	t.Helper()
	a := c.Host("a")
	others := drain
	for _, o := range others {
		if code, body := a.Call("POST", "/v1/hosts/"+o+"/drain", nil); code != http.StatusOK {
			t.Fatalf("drain %s: %d %s", o, code, body)
		}
	}
	code, body := a.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Region: region, Config: &cfg})
	for _, o := range others {
		if code, body := a.Call("DELETE", "/v1/hosts/"+o+"/drain", nil); code != http.StatusOK {
			t.Fatalf("undrain %s: %d %s", o, code, body)
		}
	}
	var m types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m.HostID != on {
		t.Fatalf("create a machine of %s in %s: %d %s; want it on host %s", app, region, code, body, on)
	}
	if code, body := a.Call("GET", "/v1/apps/"+app+"/machines/"+m.ID+"/wait?state=started&timeout=30", nil); code != http.StatusOK {
		t.Fatalf("machine %s on %s did not start: %d %s", m.ID, on, code, body)
	}
	return m
}

func edgeApp(t *testing.T, a *harness.Host, app string) {
	t.Helper()
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
		t.Fatalf("create app %s: %d %s", app, code, body)
	}
}

func edgeConfig(ref string, hard int) types.MachineConfig {
	svc := types.MachineService{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Autostart: boolPtr(true),
		Ports:  []types.MachinePort{{Port: intPtr(80), Handlers: []string{"http"}}},
		Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond), Timeout: types.DurationPtr(400 * time.Millisecond)}}}
	if hard > 0 {
		svc.Concurrency = &types.MachineServiceConcurrency{Type: "requests", SoftLimit: hard, HardLimit: hard}
	}
	return types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"}, Services: []types.MachineService{svc}}
}

// TestClusterEdge: three hosts, a and b in fra, c in iad; an app with a
// machine on b and one on c. A request entering a's edge goes to b (same
// region); with b's machine stopped (autostart on) it wakes b's machine
// rather than crossing to c; fly-replay region=iad from a machine on a is
// answered by c's; a machine with hard_limit 5 on c never has more than 5
// of 20 slow requests entering through all three edges; with b's host cut
// off, requests through a go to c within the lease, and a load loop sees
// at most the requests in flight fail.
func TestClusterEdge(t *testing.T) {
	c, ref := edgeCluster(t)
	a := c.Host("a")
	edgeApp(t, a, "edge")
	cfg := edgeConfig(ref, 0)
	// A raw TCP service too: port 10000 with the PROXY protocol to the
	// test app's echo (it answers with the client's address).
	cfg.Env["TCP_ECHO_PORT"] = "9000"
	cfg.Services = append(cfg.Services, types.MachineService{Protocol: "tcp", InternalPort: 9000, Autostop: autostopPtr(types.AutostopOff),
		Ports: []types.MachinePort{{Port: intPtr(10000), Handlers: []string{"proxy_proto"}}}})
	onB := placeOn(t, c, "b", "fra", "edge", cfg, "a")
	onC := placeOn(t, c, "c", "iad", "edge", cfg)

	// 1. a has no machine of the app: b's (same region) answers, not c's.
	harness.Poll(t, "a's edge routes to b's machine", 20*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onB.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	for i := 0; i < 10; i++ {
		code, body, err := edgeGet(a, "edge", "/headers", 5*time.Second)
		if err != nil || code != 200 {
			t.Fatalf("request %d through a: %d %q %v", i, code, body, err)
		}
		if !strings.Contains(body, "Fly-Region: [fra]") || !strings.Contains(body, "Fly-Forwarded-Port: [8080]") || strings.Contains(body, "Hangar-Edge") {
			t.Fatalf("request %d through a: the machine saw headers\n%s\nwant Fly-Region fra, Fly-Forwarded-Port 8080 (a's), no Hangar-Edge-*", i, body)
		}
	}
	for i := 0; i < 10; i++ {
		if code, body, err := edgeGet(a, "edge", "/", 5*time.Second); err != nil || code != 200 || !strings.Contains(body, "machine="+onB.ID) {
			t.Fatalf("request %d through a: %d %q %v; want b's machine %s", i, code, body, err, onB.ID)
		}
	}

	// 1a. The raw TCP service through a (which has no machine of the
	// app: it binds the port from b's machine's config): the connection
	// reaches a machine on another host with the client's address.
	var line, local string
	harness.Poll(t, "a's TCP port 10000 answers from another host's machine", 20*time.Second, func() (bool, string) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(a.Addr, "10000"), 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		if line, err = br.ReadString('\n'); err != nil {
			return false, fmt.Sprint(line, err)
		}
		local = conn.LocalAddr().String()
		fmt.Fprintf(conn, "ping\n")
		echo, err := br.ReadString('\n')
		return err == nil && echo == "echo ping\n", fmt.Sprint(echo, err)
	})
	if want := fmt.Sprintf("src=%s dst=%s version=1\n", local, net.JoinHostPort(a.Addr, "10000")); line != want {
		t.Errorf("TCP through a: %q, want %q (the client's address carried to the other host's machine)", line, want)
	}

	// 1b. Flycast: the app's Flycast address, allocated through b, is the
	// same on every host and local to each: from host a (no machine of
	// the app) a request to it reaches a machine on another host.
	if out, err := c.Host("b").Hangar("ips", "allocate-v6", "--private", "-a", "edge"); err != nil {
		t.Fatalf("allocate a Flycast address through b: %v\n%s", err, out)
	}
	var ips []types.IPAddress
	if err := a.Get("/v1/apps/edge/ips", &ips); err != nil || len(ips) != 1 {
		t.Fatalf("the app's addresses: %+v %v", ips, err)
	}
	fcAddr := net.JoinHostPort(ips[0].Address, "80")
	harness.Poll(t, "the app's Flycast address answers on host a from another host's machine", 20*time.Second, func() (bool, string) {
		conn, err := a.DialTimeout("tcp", fcAddr, 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: edge.flycast\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(conn)
		return strings.HasPrefix(string(b), "HTTP/1.1 200") && (strings.Contains(string(b), "machine="+onB.ID) || strings.Contains(string(b), "machine="+onC.ID)), string(b)
	})

	// 1c. b's machine fails its check (on b): within the check's interval
	// and 2 s, a's edge sends to c; healthy again, to b again.
	code, body, err := edgeGet(a, "edge", "/sick?d=6s", 5*time.Second)
	if err != nil || code != 200 || !strings.Contains(body, "unhealthy") {
		t.Fatalf("make b's machine sick through a: %d %q %v", code, body, err)
	}
	sick := time.Now()
	harness.Poll(t, "a's edge routes to c's machine once b's fails its check", 10*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onC.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	if d := time.Since(sick); d > 500*time.Millisecond+2*time.Second+500*time.Millisecond {
		t.Errorf("a's edge stopped sending to b's failing machine %v after it turned sick; want within the check interval (500ms) and 2s", d)
	} else {
		t.Logf("a's edge stopped sending to b's failing machine %v after it turned sick", d.Round(time.Millisecond))
	}
	harness.Poll(t, "a's edge routes to b's machine once it passes its check again", 20*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onB.ID), fmt.Sprint(code, " ", body, " ", err)
	})

	// 2. b's machine stopped, autostart on: the request wakes it.
	if code, body := a.Call("POST", "/v1/apps/edge/machines/"+onB.ID+"/stop", nil); code != http.StatusOK {
		t.Fatalf("stop b's machine: %d %s", code, body)
	}
	if code, body := a.Call("GET", "/v1/apps/edge/machines/"+onB.ID+"/wait?state=stopped&timeout=30", nil); code != http.StatusOK {
		t.Fatalf("wait stopped: %d %s", code, body)
	}
	// The edges learn that b can wake it within a publish interval and a
	// read of the stopped machines (at every publish for 1 s after a
	// machine leaves the proxy, then every 1 s): wait that long (before,
	// b publishes no machine of the app and a would cross to c).
	time.Sleep(1500 * time.Millisecond)
	code, body, err = edgeGet(a, "edge", "/", 30*time.Second)
	if err != nil || code != 200 || !strings.Contains(body, "machine="+onB.ID) {
		t.Fatalf("request through a with b's machine stopped: %d %q %v; want b's machine %s woken (not c's %s)", code, body, err, onB.ID, onC.ID)
	}
	if m := machineStateH(t, a, "edge", onB.ID); m.State != types.StateStarted {
		t.Fatalf("b's machine after the request: %s, want started", m.State)
	}

	// 3. fly-replay region=iad from a machine on a: c's machine answers.
	// (a has no machine of the app and b has one: spread puts it on a.)
	onA := placeOn(t, c, "a", "fra", "edge", cfg)
	harness.Poll(t, "a's edge routes to a's own machine", 20*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onA.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	code, body, err = edgeGet(a, "edge", "/replay?region=iad", 10*time.Second)
	if err != nil || code != 200 || !strings.Contains(body, "machine="+onC.ID) || !strings.Contains(body, "src=") {
		t.Fatalf("fly-replay region=iad from a's machine: %d %q %v; want c's machine %s", code, body, err, onC.ID)
	}

	// 4. hard_limit 5 on one machine (on c), 20 slow requests through a, b, c.
	edgeApp(t, a, "edgelim")
	lim := placeOn(t, c, "c", "iad", "edgelim", edgeConfig(ref, 5))
	for _, h := range c.Hosts() {
		harness.Poll(t, h.Name+"'s edge routes edgelim", 20*time.Second, func() (bool, string) {
			code, body, err := edgeGet(h, "edgelim", "/", 5*time.Second)
			return err == nil && code == 200, fmt.Sprint(code, " ", body, " ", err)
		})
	}
	inflightRe := regexp.MustCompile(`inflight=(\d+)`)
	var wg sync.WaitGroup
	var maxSeen atomic.Int64
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		h := c.Hosts()[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := edgeGet(h, "edgelim", "/sleep?d=400ms", 30*time.Second)
			m := inflightRe.FindStringSubmatch(body)
			if err != nil || code != 200 || m == nil || !strings.Contains(body, lim.ID) {
				errs <- fmt.Sprintf("through %s: %d %q %v", h.Name, code, body, err)
				return
			}
			n, _ := strconv.Atoi(m[1])
			for {
				cur := maxSeen.Load()
				if int64(n) <= cur || maxSeen.CompareAndSwap(cur, int64(n)) {
					break
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("hard_limit request %s", e)
	}
	if n := maxSeen.Load(); n > 5 || n < 2 {
		t.Fatalf("the machine with hard_limit 5 saw at most %d requests at once; want 5 at most (and concurrency at all)", n)
	}

	// 5. b cut off: a's requests go to c (a's own machine destroyed, so
	// that b's is the nearest), within the lease; a bounded load
	// loop sees at most the requests in flight fail.
	if code, body := a.Call("DELETE", "/v1/apps/edge/machines/"+onA.ID+"?force=true", nil); code != http.StatusOK {
		t.Fatalf("destroy a's machine: %d %s", code, body)
	}
	t.Logf("machines: a %s, b %s, c %s; a's after the destroy: %+v", onA.ID, onB.ID, onC.ID, machineStateH(t, a, "edge", onA.ID).State)
	harness.Poll(t, "a's edge routes to b's machine again", 20*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onB.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	const workers = 4
	var ok, failed atomic.Int64
	var lastB atomic.Int64 // unix nanos of the last answer from b's machine
	stop := make(chan struct{})
	var lw sync.WaitGroup
	for w := 0; w < workers; w++ {
		lw.Add(1)
		go func() {
			defer lw.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := edgeGet(a, "edge", "/", 15*time.Second)
				switch {
				case err != nil || code != 200:
					failed.Add(1)
				case strings.Contains(body, "machine="+onB.ID):
					ok.Add(1)
					lastB.Store(time.Now().UnixNano())
				default:
					ok.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	cut := time.Now()
	c.LinkDown("b")
	harness.Poll(t, "a's edge routes to c's machine with b cut off", 15*time.Second, func() (bool, string) {
		code, body, err := edgeGet(a, "edge", "/", 5*time.Second)
		return err == nil && code == 200 && strings.Contains(body, "machine="+onC.ID), fmt.Sprint(code, " ", body, " ", err)
	})
	moved := time.Since(cut)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	lw.Wait()
	c.LinkUp("b")
	t.Logf("b cut off: requests through a on c after %v; load loop: %d ok, %d failed", moved.Round(time.Millisecond), ok.Load(), failed.Load())
	if moved > 10*time.Second+2*time.Second {
		t.Errorf("requests reached c %v after b was cut off; want within the lease (10s)", moved)
	}
	if f := failed.Load(); f > workers {
		t.Errorf("%d requests of the load loop failed; want at most the %d in flight", f, workers)
	}
	if ok.Load() == 0 {
		t.Errorf("the load loop had no successful request")
	}
	// b back: etcd may elect a leader again first; the apps go once it
	// has one (the harness's cleanup would try once).
	for _, app := range []string{"edge", "edgelim"} {
		harness.Poll(t, "delete app "+app+" with b back", 60*time.Second, func() (bool, string) {
			code, body := a.Call("DELETE", "/v1/apps/"+app, nil)
			return code == http.StatusAccepted || code == http.StatusNotFound, fmt.Sprint(code, " ", body)
		})
	}
}

func machineStateH(t *testing.T, h *harness.Host, app, id string) types.Machine {
	t.Helper()
	var m types.Machine
	if err := h.Get("/v1/apps/"+app+"/machines/"+id, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
