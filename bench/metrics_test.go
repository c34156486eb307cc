package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/metrics"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/testapp"
	"github.com/hangar-dev/hangar/internal/types"
)

// BenchmarkMetrics measures what metrics cost (issue 18):
//
//   - proxy req/s with the per-request counters on (and /metrics scraped
//     every second meanwhile) against the same proxy with them off
//     (NoStats, as `--metrics-listen ""`), interleaved wrk rounds against
//     the same backend, printed side by side with the ratio;
//   - the time of one /metrics scrape with 500 machines' series: every
//     machine known to the proxy with traffic counted, its instance
//     series read from cgroup and /proc files, and its app's own series.
func BenchmarkMetrics(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk: apt-get install -y wrk")
	}
	dur := 3 * time.Second
	if v := os.Getenv("HANGAR_BENCH_SECONDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 60 {
			dur = time.Duration(n) * time.Second
		}
	}
	rounds := 5
	dir := b.TempDir()
	appBin := filepath.Join(dir, "app")
	if out, err := exec.Command("go", "build", "-o", appBin, testapp.Source()).CombinedOutput(); err != nil {
		b.Fatalf("build test app: %v\n%s", err, out)
	}
	backAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	_, port, _ := net.SplitHostPort(backAddr)
	cmd := exec.Command(appBin)
	cmd.Env = []string{"PORT=" + port, "FLY_MACHINE_ID=bench"}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitFor(http.DefaultClient, "http://"+backAddr+"/", "", "hits=", 10*time.Second); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	serve := func(px *proxy.Proxy) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
		go func() { _ = px.Serve(ln, srv) }()
		b.Cleanup(func() { _ = px.Shutdown(context.Background()) })
		return "http://" + ln.Addr().String() + "/"
	}

	// Metrics on: counters, and a registry scraped every second.
	on := proxy.New("bench.test", "local", quiet)
	on.SetBackend(proxy.Backend{App: "app", MachineID: "bench", Region: "local", Addr: backAddr}, true)
	onURL := serve(on)
	reg := metrics.NewRegistry("local", "abcd")
	reg.AddText(metrics.NewProxyCollector(on.Stats))
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	msrv := &http.Server{Handler: reg.Handler(nil)}
	go func() { _ = msrv.Serve(mln) }()
	b.Cleanup(func() { _ = msrv.Close() })
	stopScrape := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Add(1)
	go func() {
		defer scrapes.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopScrape:
				return
			case <-t.C:
				if resp, err := http.Get("http://" + mln.Addr().String() + "/metrics"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	// Metrics off.
	off := proxy.New("bench.test", "local", quiet)
	off.NoStats = true
	off.SetBackend(proxy.Backend{App: "app", MachineID: "bench", Region: "local", Addr: backAddr}, true)
	offURL := serve(off)

	cs := []struct{ name, url string }{{"metrics-on", onURL}, {"metrics-off", offURL}}
	per := make([][]wrkResult, len(cs))
	// CPU time of this process (the proxy under test, and the scrapes
	// for "on") per request: steadier than req/s on a shared host.
	cpu := make([][]float64, len(cs))
	for i := 0; i < b.N; i++ {
		for _, c := range cs {
			_ = runWrk(b, c.name, c.url, "app.bench.test", time.Second, 32) // warm the pools
		}
		for r := 0; r < rounds; r++ {
			for k := range cs {
				j := (k + r) % len(cs)
				before := cpuTime()
				res := runWrk(b, cs[j].name, cs[j].url, "app.bench.test", dur, 32)
				per[j] = append(per[j], res)
				cpu[j] = append(cpu[j], float64((cpuTime()-before).Nanoseconds())/(res.rps*dur.Seconds()))
			}
		}
	}
	close(stopScrape)
	scrapes.Wait()
	onR, offR := medianResult(per[0]), medianResult(per[1])

	// One scrape with 500 machines' series.
	const n = 500
	scrapeTime, series, bytes := scrape500(b, backAddr, n)

	var sb strings.Builder
	fmt.Fprintf(&sb, "\nmetrics cost: wrk -t1 -c32 keep-alive through the proxy, median of %d interleaved rounds of %v\n", rounds, dur)
	fmt.Fprintf(&sb, "%-12s %12s %10s %10s\n", "", "req/s", "p50", "p99")
	for _, r := range []wrkResult{onR, offR} {
		fmt.Fprintf(&sb, "%-12s %12.0f %10v %10v %s\n", r.name, r.rps, r.p50, r.p99, r.errors)
	}
	onCPU, offCPU := median(cpu[0]), median(cpu[1])
	fmt.Fprintf(&sb, "metrics on / off: %.3f req/s (target >= 0.97); proxy CPU per request %.1f µs on, %.1f µs off: on / off %.3f\n",
		onR.rps/offR.rps, onCPU/1000, offCPU/1000, onCPU/offCPU)
	fmt.Fprintf(&sb, "/metrics with %d machines: %d series, %d KiB, median scrape %v (target < 100ms)\n", n, series, bytes>>10, scrapeTime.Round(100*time.Microsecond))
	b.Log(sb.String())
	fmt.Print(sb.String())
	b.ReportMetric(onR.rps/offR.rps, "on/off")
	b.ReportMetric(onCPU/offCPU, "cpu-on/off")
	b.ReportMetric(float64(scrapeTime.Microseconds())/1000, "scrape-ms")
}

// scrape500 sets up n machines of 50 apps as the daemon would see them
// and returns the median time of a /metrics scrape over HTTP, its series
// and bytes.
func scrape500(b *testing.B, backAddr string, n int) (time.Duration, int, int) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	px := proxy.New("bench.test", "local", quiet)
	for i := 0; i < n; i++ {
		px.SetBackend(proxy.Backend{App: fmt.Sprintf("app%02d", i%50), MachineID: fmt.Sprintf("m%04d", i), Region: "local", Addr: backAddr}, true)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = px.Serve(ln, &http.Server{ReadHeaderTimeout: 10 * time.Second}) }()
	b.Cleanup(func() { _ = px.Shutdown(context.Background()) })
	// Traffic for every app: 200s and 404s, spread over its machines.
	c := &http.Client{}
	for i := 0; i < 20*n; i++ {
		path := "/"
		if i%5 == 0 {
			path = "/missing"
		}
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		req.Host = fmt.Sprintf("app%02d.bench.test", i%50)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Each machine's cgroup and /proc files, and an app metrics endpoint.
	fs := fakeCgroupTree(b, b.TempDir(), n)
	appSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for k := 0; k < 10; k++ {
			fmt.Fprintf(w, "app_requests_total{route=\"/r%d\"} %d\n", k, k*100)
		}
	})}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = appSrv.Serve(aln) }()
	b.Cleanup(func() { _ = appSrv.Close() })
	aport := aln.Addr().(*net.TCPAddr).Port
	insts := make([]metrics.Instance, n)
	for i := range insts {
		insts[i] = metrics.Instance{App: fmt.Sprintf("app%02d", i%50), ID: fmt.Sprintf("m%04d", i), Region: "local", Running: true,
			CPUs: 1, MemoryMB: 256, Addr: "127.0.0.1", Metrics: &types.MachineMetrics{Port: aport, Path: "/metrics"}}
	}
	list := func(context.Context) ([]metrics.Instance, error) { return insts, nil }
	reg := metrics.NewRegistry("local", "abcd")
	r := reg.Registerer()
	reg.AddText(metrics.NewProxyCollector(px.Stats))
	ic := metrics.NewInstanceCollector(list, fs)
	reg.AddText(ic)
	sc := &metrics.AppScraper{List: list, Region: "local", Host: "abcd", Log: quiet}
	r.MustRegister(sc.Collectors()...)
	reg.AddText(sc)
	sc.ScrapeAll(context.Background())
	ic.Sample(context.Background())
	msrv := httpTestServer(b, reg.Handler(nil))
	var times []time.Duration
	var body []byte
	for i := 0; i < 11; i++ {
		t := time.Now()
		resp, err := http.Get(msrv + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		times = append(times, time.Since(t))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	series := 0
	for _, line := range strings.Split(string(body), "\n") {
		if line != "" && line[0] != '#' {
			series++
		}
	}
	return times[len(times)/2], series, len(body)
}

// cpuTime is this process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func httpTestServer(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// fakeCgroupTree writes n machines' cgroup v2 and /proc files as the
// kernel shows them (the collector reads the same files on a host).
func fakeCgroupTree(b *testing.B, dir string, n int) metrics.CgroupFS {
	fs := metrics.CgroupFS{Root: filepath.Join(dir, "cgroup"), Proc: filepath.Join(dir, "proc"), V2: true}
	for i := 0; i < n; i++ {
		id, pid := fmt.Sprintf("m%04d", i), strconv.Itoa(10000+i)
		cg := filepath.Join(fs.Root, "hangar", id)
		files := map[string]string{
			"memory.current": "52428800\n", "memory.max": "268435456\n", "memory.swap.current": "0\n", "memory.swap.max": "max\n",
			"memory.stat":  "anon 30000000\nfile 20000000\nkernel 1000000\nshmem 4096\nfile_mapped 100\nfile_dirty 8192\nfile_writeback 0\nactive_anon 10000000\ninactive_anon 20000000\nactive_file 5000000\ninactive_file 15000000\nunevictable 0\nslab 1000000\npgfault 1000\npgmajfault 1\n",
			"cpu.stat":     "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
			"pids.current": "7\n", "cgroup.procs": pid + "\n",
			"io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
		}
		for name, c := range files {
			writeBenchFile(b, filepath.Join(cg, name), c)
		}
		pd := filepath.Join(fs.Proc, pid)
		writeBenchFile(b, filepath.Join(pd, "limits"), "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n")
		writeBenchFile(b, filepath.Join(pd, "net", "dev"), "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    5000      40    0    0    0     0          0         0     7000      50    0    0    0     0       0          0\n")
		for fd := 0; fd < 8; fd++ {
			writeBenchFile(b, filepath.Join(pd, "fd", strconv.Itoa(fd)), "")
		}
	}
	return fs
}

func writeBenchFile(b *testing.B, path, content string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}
