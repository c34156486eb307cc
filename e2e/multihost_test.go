package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestMultiHost runs the harness's multi-host mode on what exists before
// the cluster does: hosts in network namespaces joined by the fabric, each
// a real `hangar server` on an etcd that runs on the fabric's gateway.
//
// Today one daemon at a time may use an etcd namespace (the state lock),
// so a, b and c each have their own and the shared state is shown by a
// hand-over: b stops, d (another host, in another region, started later)
// takes b's namespace and sees b's app. Once hosts share one state (issue
// 14) all hosts get the same namespace and this becomes "created on a,
// listed on c" with no stop. (The app handed over has no machine: a
// daemon that takes over a namespace today treats every machine in it as
// its own, and marks one whose image it lacks failed.)
func TestMultiHost(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	const shared = "/hangar/mh-shared/"
	const rtt = 30 * time.Millisecond
	c := harness.StartCluster(t, bin, harness.ClusterOptions{
		Etcd: true,
		Hosts: []harness.HostSpec{
			{Name: "a", Region: "fra"},
			{Name: "b", Region: "fra", ExtraArgs: []string{"--etcd-prefix", shared}},
			{Name: "c", Region: "iad"},
			{Name: "d", Region: "iad", ExtraArgs: []string{"--etcd-prefix", shared}, NoStart: true},
		},
		// Flags computed per host once the fabric exists (as a join URL
		// naming another host's address will be).
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			if len(h.ExtraArgs()) > 0 {
				return nil
			}
			return []string{"--etcd-prefix", "/hangar/mh-" + h.Name + "/"}
		},
		RTT: map[string]time.Duration{"fra/iad": rtt},
	})
	a, b, hc, d := c.Host("a"), c.Host("b"), c.Host("c"), c.Host("d")
	answers := func(hs ...*harness.Host) {
		t.Helper()
		for _, h := range hs {
			if err := h.Answers(10 * time.Second); err != nil {
				t.Fatalf("from the root namespace: %v", err)
			}
		}
	}
	unreachable := func(h *harness.Host) {
		t.Helper()
		if err := h.Answers(2 * time.Second); err == nil {
			t.Fatalf("host %s's API still answers", h.Name)
		}
	}

	// Every host serves its API on its fabric address, to the root
	// namespace, and says which region it is in.
	answers(a, b, hc)
	for _, h := range []*harness.Host{a, b, hc} {
		if !strings.HasPrefix(h.API, "http://"+h.Addr+":") {
			t.Errorf("host %s serves its API at %s, not on its fabric address %s", h.Name, h.API, h.Addr)
		}
		if h.Token == "" || h.Token != h.AdminToken() {
			t.Errorf("host %s: admin token %q, data dir says %q", h.Name, h.Token, h.AdminToken())
		}
		var info map[string]any
		if err := h.Get("/v1/info", &info); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(info["region"]) != h.Region {
			t.Errorf("host %s: /v1/info region %v, want %s", h.Name, info["region"], h.Region)
		}
		want := "/hangar/mh-" + h.Name + "/"
		if h.Name == "b" {
			want = shared
		}
		if b, err := os.ReadFile(filepath.Join(h.DataDir, "state-etcd")); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("host %s: state-etcd says %q (%v), want namespace %s", h.Name, b, err, want)
		}
	}

	// Hosts reach each other over the fabric: the CLI on c lists a's apps.
	cmd := hc.Command(bin, "apps", "list")
	cmd.Env = append(os.Environ(), "HANGAR_API_URL="+a.APIURL(), "HANGAR_API_TOKEN="+a.Token, "HANGAR_DATA_DIR=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CLI on c against a's API: %v\n%s", err, out)
	}

	// Through a relay, the path from c (iad) to a (fra) has the RTT
	// between their regions; the direct path does not need it.
	relay := c.Relay("c", "a", "tcp", harness.HostAPIPort)
	direct := apiRoundTrip(t, hc, a.Addr+fmt.Sprint(":", harness.HostAPIPort))
	delayed := apiRoundTrip(t, hc, relay)
	t.Logf("c→a API round trip: direct %v, through the relay %v (RTT fra/iad %v)", direct, delayed, rtt)
	if delayed < rtt {
		t.Errorf("c→a through the relay took %v, less than the RTT %v", delayed, rtt)
	}

	// The same for UDP (the shape of issue 15's WireGuard path): a
	// datagram from c to a socket on a, and its echo, through the relay.
	echo, err := a.ListenPacket("udp", a.Addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo(buf[:n], from)
		}
	}()
	_, echoPort, _ := net.SplitHostPort(echo.LocalAddr().String())
	var port int
	fmt.Sscan(echoPort, &port)
	udp, err := hc.Dial("udp", c.Relay("c", "a", "udp", port))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udp.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := udp.Write([]byte("over the fabric")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := udp.Read(buf)
	if err != nil || string(buf[:n]) != "over the fabric" {
		t.Fatalf("UDP echo from a through the relay: %q %v", buf[:n], err)
	}
	if took := time.Since(start); took < rtt {
		t.Errorf("UDP c→a→c through the relay took %v, less than the RTT %v", took, rtt)
	}

	// A machine started on a's daemon serves through a's proxy.
	out, err := a.CLI("deploy", "-c", "examples/hello/fly.toml")
	if err != nil {
		t.Fatalf("deploy on a: %v\n%s", err, out)
	}
	ms := a.Machines("hello")
	if len(ms) != 1 || ms[0].State != types.StateStarted {
		t.Fatalf("machines on a after deploy: %+v", ms)
	}
	machine := ms[0].ID
	serves := func(when string) {
		t.Helper()
		harness.Poll(t, "a's proxy serves hello "+when, 20*time.Second, func() (bool, string) {
			code, body, err := a.ViaProxy("hello", "/")
			return err == nil && code == http.StatusOK && strings.Contains(body, machine), fmt.Sprint(code, body, err)
		})
	}
	serves("after the deploy")
	if !strings.HasPrefix(a.HTTP, "http://"+a.Addr+":") {
		t.Errorf("a's proxy is at %s, not on its fabric address", a.HTTP)
	}
	// A restarted host re-adopts its machine.
	c.RestartHost("a")
	serves("after a's restart")
	if ms := a.Machines("hello"); len(ms) != 1 || ms[0].ID != machine || harness.CountEvents(ms[0], "start") != 1 {
		t.Fatalf("after a's restart: %+v, want machine %s started once", ms, machine)
	}

	// Cut off, c answers no more; a and b go on. Back on the fabric, c
	// answers again.
	c.LinkDown("c")
	unreachable(hc)
	answers(a, b)
	serves("while c is cut off")
	c.LinkUp("c")
	harness.Poll(t, "c answers after LinkUp", 20*time.Second, func() (bool, string) {
		err := hc.Answers(2 * time.Second)
		return err == nil, fmt.Sprint(err)
	})

	// A crashed host: nothing of it runs (its daemon, its machine's
	// shim and container), its API is gone, a and b go on.
	if out, err := hc.CLI("deploy", "-c", "examples/hello/fly.toml"); err != nil {
		t.Fatalf("deploy on c: %v\n%s", err, out)
	}
	cms := hc.Machines("hello")
	if len(cms) != 1 || cms[0].State != types.StateStarted {
		t.Fatalf("machines on c after deploy: %+v", cms)
	}
	cMachine := "hangar-" + cms[0].ID
	if len(hc.PIDs()) == 0 || len(harness.NetnsPIDs(cMachine)) == 0 {
		t.Fatalf("before the crash: processes on c %v, in its machine %v", hc.PIDs(), harness.NetnsPIDs(cMachine))
	}
	c.KillHost("c")
	if pids := hc.PIDs(); len(pids) != 0 {
		t.Errorf("processes left in c's namespace after KillHost: %v", pids)
	}
	harness.Poll(t, "c's machine's processes gone", 10*time.Second, func() (bool, string) {
		pids := harness.NetnsPIDs(cMachine)
		return len(pids) == 0, fmt.Sprint(pids)
	})
	unreachable(hc)
	answers(a, b)
	serves("after c crashed")
	// It comes back (once its dead daemon's etcd lock expires) and
	// starts its machine again.
	c.StartHost("c")
	answers(hc)
	harness.Poll(t, "c's proxy serves hello after c's restart", 30*time.Second, func() (bool, string) {
		code, body, err := hc.ViaProxy("hello", "/")
		return err == nil && code == http.StatusOK && strings.Contains(body, cms[0].ID), fmt.Sprint(code, body, err)
	})

	// The state is shared through the fabric's etcd: b hands its
	// namespace over to d (a host in another region that was not
	// running), which lists the app made on b.
	if out, err := b.CLI("apps", "create", "shared"); err != nil {
		t.Fatalf("apps create on b: %v\n%s", err, out)
	}
	c.StopHost("b")
	c.StartHost("d")
	var apps struct {
		Apps []types.App `json:"apps"`
	}
	if err := d.Get("/v1/apps", &apps); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(apps.Apps, func(x types.App) bool { return x.Name == "shared" }) {
		t.Fatalf("d does not list the app created on b: %+v", apps.Apps)
	}
	// Back to b, which deletes the app at cleanup.
	c.StopHost("d")
	c.StartHost("b")
	answers(a, b, hc)
	serves("at the end")

	// Nothing of the cluster is left after its cleanup (Leftovers also
	// looks for processes that name the cluster's dirs: daemons, shims).
	id := c.ID()
	c.Close()
	if l := c.Leftovers(); len(l) > 0 {
		t.Errorf("left after Close: %v", l)
	}
	nets, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(nets), id) {
		t.Errorf("network namespaces of the cluster left:\n%s", nets)
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(links), id) {
		t.Errorf("links of the cluster left:\n%s", links)
	}
}

// apiRoundTrip opens a connection from host h to addr, sends one GET of
// the API's health check and returns how long the answer took (the
// connection is made before the clock starts).
func apiRoundTrip(t *testing.T, h *harness.Host, addr string) time.Duration {
	t.Helper()
	conn, err := h.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.Name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "GET /v1/apps HTTP/1.1\r\nHost: hangar\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("answer from %s through %s: %v", addr, h.Name, err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/apps without a token from %s via %s: %s, want 401", h.Name, addr, resp.Status)
	}
	return took
}
