package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// BenchmarkEdge measures requests through one host's edge (its public
// HTTP listener) to a machine on the same host, and to a machine on
// another host (forwarded to that host's proxy over the WireGuard mesh,
// HTTP/2 with mutual TLS; no added delay): wrk's req/s and p50/p99 side
// by side, taken in alternating rounds, the ratio, and the p50 the hop
// adds over the raw RTT between the two hosts' namespaces (ping).
func BenchmarkEdge(b *testing.B) {
	harness.RequireRoot(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk: apt-get install -y wrk")
	}
	bin := harness.BuildBinary(b)
	c := harness.StartCluster(b, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}},
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
				b.Fatalf("join token from a: %d %s", code, body)
			}
			token := tok.Token
			return append(args, "--join", "https://"+net.JoinHostPort(c.Host("a").Addr, "4281"), "--join-token", token)
		},
	})
	a, hb := c.Host("a"), c.Host("b")
	var ref string
	for _, h := range c.Hosts() {
		ref = h.ImportTestApp()
	}
	cfg := types.MachineConfig{Image: ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Ports: []types.MachinePort{{Port: intPtr(80), Handlers: []string{"http"}}},
			Concurrency: &types.MachineServiceConcurrency{Type: "requests", SoftLimit: 1000, HardLimit: 2000}}}}
	// place creates app's machine, to be on host on; with other set, that
	// host (which has no machine yet: a drain moves them) is drained
	// meanwhile, else placement's spread and free memory decide.
	place := func(app, on, other string) {
		if code, body := a.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: app}); code != http.StatusCreated {
			b.Fatalf("create app %s: %d %s", app, code, body)
		}
		if other != "" {
			if code, body := a.Call("POST", "/v1/hosts/"+other+"/drain", nil); code != http.StatusOK {
				b.Fatalf("drain %s: %d %s", other, code, body)
			}
		}
		code, body := a.Call("POST", "/v1/apps/"+app+"/machines", types.CreateMachineRequest{Region: "fra", Config: &cfg})
		if other != "" {
			if c2, b2 := a.Call("DELETE", "/v1/hosts/"+other+"/drain", nil); c2 != http.StatusOK {
				b.Fatalf("undrain %s: %d %s", other, c2, b2)
			}
		}
		var m types.Machine
		if code != http.StatusOK || json.Unmarshal([]byte(body), &m) != nil || m.HostID != on {
			b.Fatalf("machine of %s: %d %s; want it on %s", app, code, body, on)
		}
		harness.Poll(b, app+" answers through a", 30*time.Second, func() (bool, string) {
			req, _ := http.NewRequest("GET", a.HTTPURL()+"/", nil)
			req.Host = app + ".test.internal"
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == 200, resp.Status
		})
	}
	// far first, on b (a drained while empty); then same goes to a, which
	// has the more memory free.
	place("far", "b", "a")
	place("same", "a", "")

	// The raw RTT between the two hosts' namespaces (the fabric's veths).
	rtt := connectRTT(b, a, net.JoinHostPort(hb.Addr, strconv.Itoa(harness.HostAPIPort)))

	const (
		conns  = 16
		rounds = 3
		dur    = 4 * time.Second
	)
	url := a.HTTPURL() + "/"
	var same, far []wrkResult
	for i := 0; i < rounds; i++ {
		same = append(same, runWrk(b, "same host", url, "same.test.internal", dur, conns))
		far = append(far, runWrk(b, "other host", url, "far.test.internal", dur, conns))
	}
	s, f := medianResult(same), medianResult(far)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nedge across hosts: wrk -t1 -c%d through host a's edge, keep-alive HTTP/1.1, small responses; median of %d alternating rounds of %v\n", conns, rounds, dur)
	fmt.Fprintf(&sb, "%-34s %12s %10s %10s  %s\n", "", "req/s", "p50", "p99", "errors")
	for _, r := range []wrkResult{s, f} {
		fmt.Fprintf(&sb, "%-34s %12.0f %10s %10s  %s\n", "to a machine on the "+r.name, r.rps, r.p50, r.p99, r.errors)
	}
	fmt.Fprintf(&sb, "other host / same host req/s: %.2f (target ≥ 0.5)\n", f.rps/s.rps)
	fmt.Fprintf(&sb, "raw RTT a→b (TCP connect over the fabric, median): %v; p50 added by the hop: %v; over the RTT: %v (target < 0.5ms)\n",
		rtt.Round(time.Microsecond), (f.p50 - s.p50).Round(time.Microsecond), (f.p50 - s.p50 - rtt).Round(time.Microsecond))
	b.Log(sb.String())
	fmt.Print(sb.String())
}

// connectRTT is the median time of 50 TCP connects from host h to addr:
// one round trip on the link (a SYN and its SYN-ACK).
func connectRTT(b *testing.B, h *harness.Host, addr string) time.Duration {
	var ds []time.Duration
	for i := 0; i < 50; i++ {
		t0 := time.Now()
		c, err := h.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			b.Logf("connect %s from %s: %v", addr, h.Name, err)
			return 0
		}
		ds = append(ds, time.Since(t0))
		c.Close()
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func intPtr(n int) *int { return &n }
