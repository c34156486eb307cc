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
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/testapp"
)

// wrkResult is one wrk run.
type wrkResult struct {
	name     string
	rps      float64
	p50, p99 time.Duration
	errors   string
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: .*`)
)

// runWrk runs wrk (keep-alive HTTP/1.1) against url with Host host.
func runWrk(b *testing.B, name, url, host string, d time.Duration, conns int) wrkResult {
	b.Helper()
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", "--timeout", "5s"}
	if host != "" {
		args = append(args, "-H", "Host: "+host)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", name, err, out)
	}
	r := wrkResult{name: name}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk %s: no Requests/sec in\n%s", name, out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, pm := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(pm[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(pm[3])]
		dur := time.Duration(v * float64(unit))
		if string(pm[1]) == "50" {
			r.p50 = dur
		} else {
			r.p99 = dur
		}
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		r.errors += "non-2xx " + string(m[1]) + " "
	}
	if m := wrkSockErr.Find(out); m != nil {
		r.errors += string(m)
	}
	return r
}

func freePort(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProc starts a foreground process that is killed when the benchmark
// ends, and waits until url answers.
func startProc(b *testing.B, url, host string, name string, args ...string) {
	b.Helper()
	cmd := exec.Command(name, args...)
	logf, _ := os.Create(filepath.Join(b.TempDir(), filepath.Base(name)+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "HOME="+b.TempDir())
	// Its own process group: nginx's workers outlive a killed master, so
	// the whole group is stopped (TERM, then KILL) and waited for.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	b.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// Workers may exit just after the master: wait for the group to empty.
		deadline := time.Now().Add(5 * time.Second)
		for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		logf.Close()
	})
	if err := waitFor(http.DefaultClient, url, host, "hits=", 10*time.Second); err != nil {
		out, _ := os.ReadFile(logf.Name())
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// BenchmarkProxy compares, in one run and against the same backend (the
// test app on the host), wrk's figures direct, through Hangar's proxy,
// through nginx and through Caddy.
func BenchmarkProxy(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk: apt-get install -y wrk")
	}
	dur := 3 * time.Second
	if v := os.Getenv("HANGAR_BENCH_SECONDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 60 {
			dur = time.Duration(n) * time.Second
		}
	}
	conns := 32
	dir := b.TempDir()

	// The backend: the test app as a host process.
	appBin := filepath.Join(dir, "app")
	if out, err := exec.Command("go", "build", "-o", appBin, testapp.Source()).CombinedOutput(); err != nil {
		b.Fatalf("build test app: %v\n%s", err, out)
	}
	backPort := freePort(b)
	backAddr := fmt.Sprintf("127.0.0.1:%d", backPort)
	cmd := exec.Command(appBin)
	cmd.Env = []string{fmt.Sprintf("PORT=%d", backPort), "FLY_MACHINE_ID=bench"}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitFor(http.DefaultClient, "http://"+backAddr+"/", "", "hits=", 10*time.Second); err != nil {
		b.Fatal(err)
	}

	// Hangar's proxy, with the server settings the daemon uses.
	px := proxy.New("bench.test", "local", slog.New(slog.NewTextHandler(io.Discard, nil)))
	px.SetBackend(proxy.Backend{App: "app", MachineID: "bench", Region: "local", Addr: backAddr}, true)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hsrv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = px.Serve(hln, hsrv) }()
	b.Cleanup(func() { _ = px.Shutdown(context.Background()) })
	hangarURL := "http://" + hln.Addr().String() + "/"

	results := []wrkResult{}
	type contender struct {
		name, url, host string
		procs           int // GOMAXPROCS of this process during the run (0: unchanged)
	}
	// hangar-1p is the same proxy with GOMAXPROCS=1: on a small host that
	// also runs the load generator and the backend, one P avoids the Go
	// scheduler's spinning between cores and shows in the tail latency.
	cs := []contender{{"direct", "http://" + backAddr + "/", "", 0}, {"hangar", hangarURL, "app.bench.test", 0}, {"hangar-1p", hangarURL, "app.bench.test", 1}}

	if nginx, err := exec.LookPath("nginx"); err == nil {
		port := freePort(b)
		ndir := filepath.Join(dir, "nginx")
		_ = os.MkdirAll(filepath.Join(ndir, "tmp"), 0o755)
		conf := fmt.Sprintf(`worker_processes auto;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  upstream app { server %[2]s; keepalive 256; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`, ndir, backAddr, port)
		confPath := filepath.Join(ndir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		startProc(b, url, "", nginx, "-p", ndir, "-c", confPath, "-e", filepath.Join(ndir, "error.log"))
		cs = append(cs, contender{"nginx", url, "", 0})
	} else {
		b.Log("nginx not installed (apt-get install -y nginx); skipping it")
	}
	if caddy, err := exec.LookPath("caddy"); err == nil {
		port := freePort(b)
		conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:%d {\n\treverse_proxy %s\n}\n", port, backAddr)
		confPath := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			b.Fatal(err)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", port)
		startProc(b, url, "", caddy, "run", "--config", confPath, "--adapter", "caddyfile")
		cs = append(cs, contender{"caddy", url, "", 0})
	} else {
		b.Log("caddy not installed (apt-get install -y caddy); skipping it")
	}

	// Rounds interleave the contenders, so that load bursts from other work
	// on a shared host hit them alike; each figure is the median of its
	// rounds.
	rounds := 3
	if v := os.Getenv("HANGAR_BENCH_ROUNDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 10 {
			rounds = n
		}
	}
	for i := 0; i < b.N; i++ {
		per := make([][]wrkResult, len(cs))
		for j, c := range cs {
			_ = runWrk(b, c.name, c.url, c.host, time.Second, conns) // fill keep-alive pools
			_ = j
		}
		for round := 0; round < rounds; round++ {
			for k := range cs {
				j := (k + round) % len(cs)
				prev := 0
				if cs[j].procs > 0 {
					prev = runtime.GOMAXPROCS(cs[j].procs)
				}
				per[j] = append(per[j], runWrk(b, cs[j].name, cs[j].url, cs[j].host, dur, conns))
				if prev > 0 {
					runtime.GOMAXPROCS(prev)
				}
			}
		}
		results = results[:0]
		for j := range cs {
			results = append(results, medianResult(per[j]))
		}
	}
	direct := results[0]
	var nginxR *wrkResult
	for i := range results {
		if results[i].name == "nginx" {
			nginxR = &results[i]
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nproxy throughput: wrk -t1 -c%d, keep-alive HTTP/1.1, small responses from the same backend; median of %d interleaved rounds of %v\n", conns, rounds, dur)
	fmt.Fprintf(&sb, "%-10s %12s %10s %10s %10s %10s\n", "", "req/s", "p50", "p99", "x direct", "x nginx")
	for _, r := range results {
		vsN := "-"
		if nginxR != nil {
			vsN = fmt.Sprintf("%.2f", r.rps/nginxR.rps)
		}
		fmt.Fprintf(&sb, "%-10s %12.0f %10v %10v %10.2f %10s %s\n", r.name, r.rps, r.p50, r.p99, r.rps/direct.rps, vsN, r.errors)
	}
	b.Log(sb.String())
	fmt.Print(sb.String())
	for _, r := range results {
		b.ReportMetric(r.rps, r.name+"-req/s")
	}
}

// medianResult takes the median of each figure over rounds.
func medianResult(rs []wrkResult) wrkResult {
	out := wrkResult{name: rs[0].name}
	rps := make([]float64, len(rs))
	p50 := make([]time.Duration, len(rs))
	p99 := make([]time.Duration, len(rs))
	for i, r := range rs {
		rps[i], p50[i], p99[i] = r.rps, r.p50, r.p99
		out.errors += r.errors
	}
	sort.Float64s(rps)
	sort.Slice(p50, func(i, j int) bool { return p50[i] < p50[j] })
	sort.Slice(p99, func(i, j int) bool { return p99[i] < p99[j] })
	out.rps, out.p50, out.p99 = rps[len(rs)/2], p50[len(rs)/2], p99[len(rs)/2]
	return out
}
