package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
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
// another host (forwarded to that host's proxy over the WireGuard mesh; no
// added delay): wrk's req/s and p50/p99 side by side, taken in
// alternating rounds, the ratio, and the p50 the hop adds over the raw RTT
// between the two hosts' namespaces (TCP connect).
//
// Variants, each on a cluster of its own, one after the other: "hop" (as
// built: the fast path forwards on the plain HTTP/1.1 hop), "tls"
// (--edge-no-hop: the net/http path and HTTP/2 with mutual TLS, as before
// the hop), and with HANGAR_BENCH_BEFORE=<a hangar binary of an older
// tree> "before" (that build). HANGAR_BENCH_EDGE=hop,tls picks variants.
func BenchmarkEdge(b *testing.B) {
	harness.RequireRoot(b)
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk: apt-get install -y wrk")
	}
	bin := harness.BuildBinary(b)
	type variant struct {
		name, bin string
		args      []string
	}
	vs := []variant{{"hop", bin, nil}, {"tls", bin, []string{"--edge-no-hop"}}}
	if before := os.Getenv("HANGAR_BENCH_BEFORE"); before != "" {
		vs = append(vs, variant{"before", before, nil})
	}
	if only := os.Getenv("HANGAR_BENCH_EDGE"); only != "" {
		vs = slices.DeleteFunc(vs, func(v variant) bool { return !slices.Contains(strings.Split(only, ","), v.name) })
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nedge across hosts: wrk -t1 -c%d through host a's edge, keep-alive HTTP/1.1, small responses; median of %d alternating rounds of %v\n", edgeConns, edgeRounds, edgeDur)
	fmt.Fprintf(&sb, "%-8s %-22s %10s %9s %9s  %-8s %s\n", "variant", "to a machine on the", "req/s", "p50", "p99", "errors", "")
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) {
			s, f, rtt := edgeRun(b, v.bin, v.args)
			for _, r := range []wrkResult{s, f} {
				fmt.Fprintf(&sb, "%-8s %-22s %10.0f %9s %9s  %-8s\n", v.name, r.name, r.rps, r.p50, r.p99, r.errors)
			}
			fmt.Fprintf(&sb, "%-8s other host / same host req/s: %.2f (target ≥ 0.5); raw RTT a→b %v; p50 added by the hop %v, over the RTT %v (target < 0.5ms)\n",
				v.name, f.rps/s.rps, rtt.Round(time.Microsecond), (f.p50 - s.p50).Round(time.Microsecond), (f.p50 - s.p50 - rtt).Round(time.Microsecond))
		})
	}
	b.Log(sb.String())
	fmt.Print(sb.String())
}

const (
	edgeConns  = 16
	edgeRounds = 3
	edgeDur    = 4 * time.Second
)

// edgeRun starts two hosts of one region (bin, with extra daemon
// arguments) and measures through a's edge: to a machine on a, to one on
// b, and the raw RTT between them.
func edgeRun(b *testing.B, bin string, extra []string) (same, far wrkResult, rtt time.Duration) {
	c := harness.StartCluster(b, bin, harness.ClusterOptions{
		Hosts: []harness.HostSpec{{Name: "a", Region: "fra"}, {Name: "b", Region: "fra"}},
		Args: func(c *harness.Cluster, h *harness.Host) []string {
			args := append([]string{"--member-name", h.Name, "--advertise-addr", h.Addr}, extra...)
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
	rtt = connectRTT(b, a, net.JoinHostPort(hb.Addr, strconv.Itoa(harness.HostAPIPort)))

	url := a.HTTPURL() + "/"
	var ss, fs []wrkResult
	for i := 0; i < edgeRounds; i++ {
		ss = append(ss, runWrk(b, "same host", url, "same.test.internal", edgeDur, edgeConns))
		fs = append(fs, runWrk(b, "other host", url, "far.test.internal", edgeDur, edgeConns))
	}
	return medianResult(ss), medianResult(fs), rtt
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
