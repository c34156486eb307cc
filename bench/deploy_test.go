package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

const deployConfig = `app = "bd"
primary_region = "tst"
kill_signal = "SIGTERM"
kill_timeout = "5s"
[env]
  PORT = "8080"
  APP_VERSION = "%d"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// BenchmarkDeploy deploys a 3-machine app with a prebuilt image once per
// strategy under continuous load (200 keep-alive connections through the
// proxy) and prints, side by side, the wall time, the requests sent and
// failed, and the latency of the traffic during the deploy (p50, p99,
// max) against the same load with no deploy, measured just before.
// flyctl's fixed smoke-check waits alone exceed 30 s for 3 machines.
func BenchmarkDeploy(b *testing.B) {
	harness.RequireRoot(b)
	var args []string
	if os.Getenv("HANGAR_BENCH_LOG") != "" {
		args = append(args, "--debug")
	}
	// With HANGAR_BENCH_BEFORE_HANGAR (a `hangar` binary built from an older tree),
	// each deploy is also run on a daemon of it, in turn, to measure a
	// change before and after in one run.
	type daemon struct {
		name string
		d    *harness.Daemon
		ref  string
	}
	daemons := []*daemon{{name: "", d: harness.StartDaemonWith(b, harness.BuildBinary(b), args...)}}
	if before := os.Getenv("HANGAR_BENCH_BEFORE_HANGAR"); before != "" {
		daemons = append(daemons, &daemon{name: "before ", d: harness.StartDaemonWith(b, before, args...)})
	}
	dir := b.TempDir()
	cfg := filepath.Join(dir, "fly.toml")
	write := func(v int) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(deployConfig, v)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(0)
	for _, hd := range daemons {
		hd.ref = hd.d.ImportTestApp()
		if out, err := hd.d.Hangar("deploy", "-c", cfg, "--image", hd.ref); err != nil {
			b.Fatalf("first deploy: %v\n%s", err, out)
		}
		if out, err := hd.d.Hangar("scale", "count", "3", "-a", "bd"); err != nil {
			b.Fatalf("scale: %v\n%s", err, out)
		}
	}
	type row struct {
		strategy string
		took     time.Duration
		res      loadResult
	}
	var rows []row
	strategies := []string{"rolling", "bluegreen", "canary", "immediate"}
	if only := os.Getenv("HANGAR_BENCH_STRATEGIES"); only != "" {
		strategies = strings.Split(only, ",") // "rolling,rolling": repeat
	}
	for i, s := range strategies {
		write(i + 1)
		for _, hd := range daemons {
			d := hd.d
			// The same load with no deploy first: the baseline of its latency.
			l := startLoad(d.HTTP, "bd.test.internal", deployConns)
			time.Sleep(time.Second)
			rows = append(rows, row{hd.name + "(no deploy)", time.Second, l.finish()})
			l = startLoad(d.HTTP, "bd.test.internal", deployConns)
			start := time.Now()
			out, err := d.Hangar("deploy", "-c", cfg, "--image", hd.ref, "--strategy", s)
			took := time.Since(start)
			res := l.finish()
			if err != nil {
				b.Fatalf("%s deploy: %v\n%s", s, err, out)
			}
			if os.Getenv("HANGAR_BENCH_LOG") != "" {
				fmt.Printf("%s%s deploy output:\n%s\n", hd.name, s, out)
			}
			rows = append(rows, row{hd.name + s, took, res})
			if hd.name == "" {
				b.ReportMetric(took.Seconds(), s+"-s")
				b.ReportMetric(float64(res.p99.Microseconds())/1000, s+"-p99-ms")
			}
		}
	}
	if dst := os.Getenv("HANGAR_BENCH_LOG"); dst != "" {
		for _, hd := range daemons {
			name := strings.TrimSpace(hd.name)
			if name == "" {
				name = "hangar"
			}
			copyDaemonLog(b, hd.d, dst+"."+name)
		}
	}
	fmt.Printf("\nDeploy of 3 machines under load (%d keep-alive connections), prebuilt image:\n", deployConns)
	fmt.Printf("%-19s %8s %9s %7s %9s %9s %9s %12s\n", "strategy", "wall", "requests", "failed", "p50", "p99", "max", "p99 × idle")
	var base time.Duration
	for _, r := range rows {
		ratio := ""
		if strings.HasSuffix(r.strategy, "(no deploy)") {
			base = r.res.p99
		} else if base > 0 {
			ratio = fmt.Sprintf("%.2fx", float64(r.res.p99)/float64(base))
		}
		fmt.Printf("%-19s %8s %9d %7d %9s %9s %9s %12s\n", r.strategy, r.took.Round(time.Millisecond), r.res.sent, r.res.failed,
			r.res.p50.Round(10*time.Microsecond), r.res.p99.Round(10*time.Microsecond), r.res.max.Round(100*time.Microsecond), ratio)
		for _, e := range r.res.errs {
			fmt.Printf("    failed: %s\n", e)
		}
	}
	fmt.Println("(target: rolling under 2 s with 0 failures; immediate drops capacity by design; \"p99 × idle\" is the p99 during the deploy over the p99 of the same load just before it)")
}

// deployConns is the load's keep-alive connections during a deploy.
const deployConns = 200

// load is keep-alive HTTP clients requesting / of one app through the
// proxy in a loop, each on its own connection, recording every request's
// latency.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex // guards lat and errs
	lat    []time.Duration
	errs   map[string]int
	sent   atomic.Int64
	failed atomic.Int64
}

type loadResult struct {
	sent, failed  int64
	p50, p99, max time.Duration
	errs          []string
}

func startLoad(proxyURL, host string, conns int) *load {
	l := &load{stop: make(chan struct{}), errs: map[string]int{}}
	for w := 0; w < conns; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 20 * time.Second}
			defer c.CloseIdleConnections()
			var lat []time.Duration
			defer func() {
				l.mu.Lock()
				l.lat = append(l.lat, lat...)
				l.mu.Unlock()
			}()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", proxyURL+"/", nil)
				req.Host = host
				l.sent.Add(1)
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t0))
				if resp.StatusCode != http.StatusOK {
					l.fail(resp.Status)
				}
			}
		}()
	}
	return l
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	l.errs[msg]++
	l.mu.Unlock()
}

// finish stops the load and sums it up.
func (l *load) finish() loadResult {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := loadResult{sent: l.sent.Load(), failed: l.failed.Load()}
	if n := len(l.lat); n > 0 {
		sort.Slice(l.lat, func(i, j int) bool { return l.lat[i] < l.lat[j] })
		r.p50, r.p99, r.max = l.lat[n/2], l.lat[n*99/100], l.lat[n-1]
	}
	for m, n := range l.errs {
		if len(r.errs) == 5 {
			break
		}
		r.errs = append(r.errs, fmt.Sprintf("%dx %s", n, m))
	}
	return r
}
