package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// clusterRuns is how many machines each side creates (alternately, so
// that both see the same load on a shared machine).
const clusterRuns = 7

func benchMachine(ref string) *types.MachineConfig {
	return &types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Guest:    &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 128},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Checks: []types.MachineCheck{{Type: "http", Path: "/healthz", Interval: types.DurationPtr(500 * time.Millisecond)}}}}}
}

// createTimes are the parts of one create → first 200.
type createTimes struct {
	total, answered time.Duration // to the first 200; to the create's answer
	forwarded       bool          // made by another host than the one asked
}

// createToFirst200 creates an app and a machine of it through api (in
// region, "" for the host's) and returns the time from the create request
// to the first 200 through the proxy of the host the machine landed on.
func createToFirst200(b *testing.B, api *harness.Daemon, proxyOf func(hostID string) *harness.Daemon, app, region, ref string) createTimes {
	b.Helper()
	if code, body := api.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app, OrgSlug: "personal"}); code != http.StatusCreated {
		b.Fatalf("create app %s: %d %s", app, code, body)
	}
	start := time.Now()
	code, body := api.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Region: region, Config: benchMachine(ref)})
	answered := time.Since(start)
	var m types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil {
		b.Fatalf("create a machine of %s: %d %s", app, code, body)
	}
	px := proxyOf(m.HostID)
	deadline := start.Add(60 * time.Second)
	for {
		if code, _, err := px.ViaProxy(app, "/"); err == nil && code == http.StatusOK {
			return createTimes{total: time.Since(start), answered: answered, forwarded: px != api}
		}
		if time.Now().After(deadline) {
			b.Fatalf("machine %s of %s: no 200 within 60 s", m.ID, app)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func medianD(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

// BenchmarkCluster prints, side by side: machine create → first 200 on a
// 3-host cluster (the embedded etcd of --cluster-init and --join) vs on a
// single host (bbolt); the API's read of a
// machine from a host that does not run it (forwarded) vs from its own
// host; and the time from a host's loss to its app serving again at its
// count (the grace included, and without it).
func BenchmarkCluster(b *testing.B) {
	harness.RequireRoot(b)
	bin := harness.BuildBinary(b)

	// One host, the bbolt store.
	single := harness.StartDaemon(b, bin)
	ref := single.ImportTestApp()

	// Three hosts, a and b in fra, c in iad, in a cluster with the
	// embedded etcd (three voting members, which fsync as in production;
	// the mesh is left out, as it is not on the create path).
	const grace = 5 * time.Second
	c := harness.StartCluster(b, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}, {Name: "c", Region: "iad"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			args := []string{"--member-name", h.Name, "--host-id", h.Name, "--advertise-addr", h.Addr, "--no-mesh",
				"--host-failure-grace", grace.String()}
			if h.Name == "a" {
				return append(args, "--cluster-init")
			}
			out, err := c.Host("a").CLI("cluster", "join-token")
			if err != nil {
				b.Fatalf("join-token on a: %v\n%s", err, out)
			}
			token := ""
			for _, f := range strings.Fields(out) {
				if strings.HasPrefix(f, "hj1_") {
					token = f
				}
			}
			return append(args, "--join", "https://"+net.JoinHostPort(c.Host("a").Addr, "4281"), "--join-token", token)
		},
	})
	for _, h := range c.Hosts() {
		h.ImportTestApp()
	}
	a := c.Host("a")
	proxyOf := func(id string) *harness.Daemon { return c.Host(id).Daemon }
	var one, three []createTimes
	for i := range clusterRuns {
		one = append(one, createToFirst200(b, single, func(string) *harness.Daemon { return single }, fmt.Sprintf("bs%d", i), "", ref))
		three = append(three, createToFirst200(b, a.Daemon, proxyOf, fmt.Sprintf("bc%d", i), "fra", ref))
	}

	// API reads of one machine on c: from c, and from a (forwarded).
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "brd", OrgSlug: "personal"}); code != http.StatusCreated {
		b.Fatalf("create app: %d %s", code, body)
	}
	code, body := a.Call("POST", "/v1/apps/brd/machines", types.CreateMachineRequest{Region: "iad", Config: benchMachine(ref)})
	var onC types.Machine
	if code != http.StatusOK || json.Unmarshal([]byte(body), &onC) != nil || onC.HostID != "c" {
		b.Fatalf("machine in iad: %d %s", code, body)
	}
	read := func(d *harness.Daemon) []time.Duration {
		var out []time.Duration
		for range 200 {
			start := time.Now()
			if code, body := d.Call("GET", "/v1/apps/brd/machines/"+onC.ID, nil); code != http.StatusOK {
				b.Fatalf("read: %d %s", code, body)
			}
			out = append(out, time.Since(start))
		}
		return out
	}
	owner, other := read(c.Host("c").Daemon), read(a.Daemon)

	// Host loss: c runs two machines of an app; time until both have
	// healthy replacements.
	if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "blo", OrgSlug: "personal"}); code != http.StatusCreated {
		b.Fatalf("create app: %d %s", code, body)
	}
	for range 2 {
		if code, body := a.Call("POST", "/v1/apps/blo/machines", types.CreateMachineRequest{Region: "iad", Config: benchMachine(ref)}); code != http.StatusOK {
			b.Fatalf("machine in iad: %d %s", code, body)
		}
	}
	lostAt := time.Now()
	c.KillHost("c")
	var unreachableAfter time.Duration
	for {
		if unreachableAfter == 0 {
			var m types.Machine
			if err := a.Get("/v1/apps/brd/machines/"+onC.ID, &m); err == nil && m.State == types.StateUnknown {
				unreachableAfter = time.Since(lostAt)
			}
		}
		n := 0
		for _, m := range a.Machines("blo") {
			if !strings.HasPrefix(m.HostNote, "replaced machine ") {
				continue
			}
			var full types.Machine
			if err := a.Get("/v1/apps/blo/machines/"+m.ID, &full); err == nil && full.State == types.StateStarted && len(full.Checks) > 0 && full.Checks[0].Status == types.CheckPassing {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Since(lostAt) > 2*time.Minute {
			b.Fatal("the app was not back at its count within 2 minutes of the host's loss")
		}
		time.Sleep(50 * time.Millisecond)
	}
	back := time.Since(lostAt)
	// c back: it fences its copies, and the cleanup can delete the apps.
	c.StartHost("c")

	parts := func(ts []createTimes) (total, answered time.Duration, fwd int) {
		var t, a []time.Duration
		for _, c := range ts {
			t, a = append(t, c.total), append(a, c.answered)
			if c.forwarded {
				fwd++
			}
		}
		return medianD(t), medianD(a), fwd
	}
	m1, a1, _ := parts(one)
	m3, a3, fwd := parts(three)
	fmt.Printf("\nMachine create → first 200 through the owner host's proxy (median of %d; the create's answer in brackets):\n", clusterRuns)
	fmt.Printf("  %-34s %10s (%s)\n  %-34s %10s (%s; %d of %d made by another host than the one asked)\n  ratio cluster/single %.2f× (target ≤ 1.2×)\n",
		"single host, bbolt store", m1.Round(time.Millisecond), a1.Round(time.Millisecond),
		"3-host cluster, embedded etcd", m3.Round(time.Millisecond), a3.Round(time.Millisecond), fwd, clusterRuns, float64(m3)/float64(m1))
	fmt.Printf("\nAPI read of a machine (GET, 200 reads), median / p99:\n")
	fmt.Printf("  %-34s %8s / %8s\n  %-34s %8s / %8s\n  ratio non-owner/owner %.2f× (median)\n",
		"from its own host", medianD(owner).Round(10*time.Microsecond), pct(owner, 0.99).Round(10*time.Microsecond),
		"from another host (forwarded)", medianD(other).Round(10*time.Microsecond), pct(other, 0.99).Round(10*time.Microsecond),
		float64(medianD(other))/float64(medianD(owner)))
	fmt.Printf("\nHost loss (kill -9 of host c, 2 machines, --host-failure-grace %v):\n", grace)
	fmt.Printf("  machines read unknown after       %10s (the host lease: 10 s)\n", unreachableAfter.Round(100*time.Millisecond))
	fmt.Printf("  app back at its count, healthy    %10s (%s after the lease and the grace)\n",
		back.Round(100*time.Millisecond), (back - unreachableAfter - grace).Round(100*time.Millisecond))
	b.ReportMetric(float64(m3)/float64(m1), "create-ratio")
	b.ReportMetric(back.Seconds(), "failover-s")
}
