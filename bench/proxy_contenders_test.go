package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/testapp"
)

// The proxy benchmarks run every contender as its own process against the
// same backend (the test app as a host process), side by side in one run:
// direct, Hangar's proxy (the test binary re-run as a proxy daemon, see
// TestProxyDaemonChild), the same with GOMAXPROCS=1, nginx, HAProxy and
// Caddy (those installed). Their configurations are in docs/proxy.md.

// contender is one way to reach the backend.
type contender struct {
	name     string
	url      string // http://host:port/
	host     string // Host header to send ("" for the URL's)
	tlsURL   string // https://host:port/ ("" if it does not serve TLS)
	pid      int    // process group of the proxy (0 for direct)
	dataPath string // the path the contender serves the app at (always "/")
}

// benchEnv is the backend and the contenders of one benchmark.
type benchEnv struct {
	dir      string
	backAddr string
	cs       []contender
}

type envOpts struct {
	tls      bool // contenders serve TLS too (those that can: Hangar, nginx)
	maxConns int  // connections the contenders must accept (nginx worker_connections, HAProxy maxconn)
}

func benchSeconds(def time.Duration) time.Duration {
	if v := os.Getenv("HANGAR_BENCH_SECONDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 60 {
			return time.Duration(n) * time.Second
		}
	}
	return def
}

func benchRounds(def int) int {
	if v := os.Getenv("HANGAR_BENCH_ROUNDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 10 {
			return n
		}
	}
	return def
}

// startBackend builds and starts the test app on a free port.
func startBackend(b *testing.B, dir string) string {
	appBin := filepath.Join(dir, "app")
	if out, err := exec.Command("go", "build", "-o", appBin, testapp.Source()).CombinedOutput(); err != nil {
		b.Fatalf("build test app: %v\n%s", err, out)
	}
	backAddr := fmt.Sprintf("127.0.0.1:%d", freePort(b))
	cmd := exec.Command(appBin)
	cmd.Env = []string{"PORT=" + strings.TrimPrefix(backAddr, "127.0.0.1:"), "FLY_MACHINE_ID=bench"}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := waitFor(http.DefaultClient, "http://"+backAddr+"/", "", "hits=", 10*time.Second); err != nil {
		b.Fatal(err)
	}
	return backAddr
}

// newEnv starts the backend and every installed contender.
func newEnv(b *testing.B, o envOpts) *benchEnv {
	b.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("needs wrk: apt-get install -y wrk")
	}
	if o.maxConns == 0 {
		o.maxConns = 4096
	}
	raiseFileLimit(4*o.maxConns + 1024)
	e := &benchEnv{dir: b.TempDir()}
	e.backAddr = startBackend(b, e.dir)
	var certFile, keyFile string
	if o.tls {
		certFile, keyFile = writeCert(b, e.dir)
	}
	e.cs = append(e.cs, contender{name: "direct", url: "http://" + e.backAddr + "/"})
	e.cs = append(e.cs, startProxyd(b, "hangar", os.Args[0], e.backAddr, 0, certFile, keyFile))
	e.cs = append(e.cs, startProxyd(b, "hangar-1p", os.Args[0], e.backAddr, 1, certFile, keyFile))
	if bin := os.Getenv("HANGAR_BENCH_BEFORE"); bin != "" {
		// Another build of this benchmark (an older tree) as a contender,
		// to measure a change before and after in one run.
		e.cs = append(e.cs, startProxyd(b, "before", bin, e.backAddr, 0, certFile, keyFile))
	}
	if c, ok := startNginx(b, e.dir, e.backAddr, o.maxConns, certFile, keyFile); ok {
		e.cs = append(e.cs, c)
	}
	if c, ok := startHAProxy(b, e.dir, e.backAddr, o.maxConns); ok {
		e.cs = append(e.cs, c)
	}
	if c, ok := startCaddy(b, e.dir, e.backAddr); ok {
		e.cs = append(e.cs, c)
	}
	if only := os.Getenv("HANGAR_BENCH_ONLY"); only != "" {
		// Just these contenders (comma-separated names), for a longer
		// A/B run of two.
		keep := e.cs[:0]
		for _, c := range e.cs {
			if slices.Contains(strings.Split(only, ","), c.name) {
				keep = append(keep, c)
			}
		}
		e.cs = keep
	}
	return e
}

// raiseFileLimit raises this process's open file limit (inherited by the
// contenders) to at least n, if it may (root); the benchmarks that need
// many connections fail with a clear error from the contender otherwise.
func raiseFileLimit(n int) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur >= uint64(n) {
		return
	}
	want := syscall.Rlimit{Cur: uint64(n), Max: max(l.Max, uint64(n))}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		want.Max = l.Max
		want.Cur = min(uint64(n), l.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
}

// TestProxyDaemonChild is not a test: the proxy benchmarks run the test
// binary with HANGAR_BENCH_PROXYD set to a backend address, and this
// serves that backend as app.bench.test through Hangar's proxy, with the
// daemon's server settings, in a process of its own
// (so its CPU and memory are measured like nginx's), until its stdin
// closes. It prints "proxyd http=ADDR https=ADDR" once listening.
func TestProxyDaemonChild(t *testing.T) {
	backAddr := os.Getenv("HANGAR_BENCH_PROXYD")
	if backAddr == "" {
		t.Skip("the proxy benchmarks' Hangar contender; not a test")
	}
	px := proxy.New("bench.test", "local", slog.New(slog.NewTextHandler(io.Discard, nil)))
	px.SetBackend(proxy.Backend{App: "app", MachineID: "bench", Region: "local", Addr: backAddr}, true)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() { _ = px.Serve(hln, srv) }()
	httpsAddr := ""
	if cert := os.Getenv("HANGAR_BENCH_PROXYD_CERT"); cert != "" {
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(cert, os.Getenv("HANGAR_BENCH_PROXYD_KEY"))
		if err != nil {
			t.Fatal(err)
		}
		// As the daemon's HTTPS listener: the proxy makes the handshakes
		// and serves HTTP/1.1 on its fast path, tsrv HTTP/2 and the rest.
		tcfg := &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
		tsrv := &http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelDebug)}
		go func() { _ = px.ServeTLS(tln, tcfg, tsrv) }()
		httpsAddr = tln.Addr().String()
	}
	if path := os.Getenv("HANGAR_BENCH_PROXYD_CPUPROFILE"); path != "" {
		// A CPU profile of the whole run, written when it ends.
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	// SIGUSR1 prints the runtime's memory figures to stderr (to see
	// where the resident memory is: heap in use, free and released,
	// stacks, the runtime's own).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			mib := func(v uint64) string { return fmt.Sprintf("%.1fMiB", float64(v)/(1<<20)) }
			fmt.Fprintf(os.Stderr, "proxyd memory: sys %s heap_inuse %s heap_idle %s heap_released %s heap_alloc %s stack_inuse %s stack_sys %s mspan %s mcache %s gc_sys %s other_sys %s buckhash %s goroutines %d numgc %d\n",
				mib(ms.Sys), mib(ms.HeapInuse), mib(ms.HeapIdle), mib(ms.HeapReleased), mib(ms.HeapAlloc), mib(ms.StackInuse), mib(ms.StackSys),
				mib(ms.MSpanSys), mib(ms.MCacheSys), mib(ms.GCSys), mib(ms.OtherSys), mib(ms.BuckHashSys), runtime.NumGoroutine(), ms.NumGC)
		}
	}()
	fmt.Printf("proxyd http=%s https=%s\n", hln.Addr(), httpsAddr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = px.Shutdown(ctx)
}

// startProxyd runs Hangar's proxy as a process of its own, from bin (a
// build of this benchmark), with GOMAXPROCS procs (0: the default).
func startProxyd(b *testing.B, name, bin, backAddr string, procs int, certFile, keyFile string) contender {
	b.Helper()
	cmd := exec.Command(bin, "-test.run=^TestProxyDaemonChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HANGAR_BENCH_PROXYD="+backAddr, "HANGAR_BENCH_PROXYD_CERT="+certFile, "HANGAR_BENCH_PROXYD_KEY="+keyFile)
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	if gd := os.Getenv("HANGAR_BENCH_PROXYD_GODEBUG"); gd != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+gd)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start the proxy daemon: %v", err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("the proxy daemon did not start: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	var httpAddr, httpsAddr string
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "http="); ok {
			httpAddr = v
		}
		if v, ok := strings.CutPrefix(f, "https="); ok {
			httpsAddr = v
		}
	}
	c := contender{name: name, url: "http://" + httpAddr + "/", host: "app.bench.test", pid: cmd.Process.Pid}
	if httpsAddr != "" {
		c.tlsURL = "https://" + httpsAddr + "/"
	}
	if err := waitFor(http.DefaultClient, c.url, c.host, "hits=", 10*time.Second); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return c
}

// nginxConf is nginx's configuration: as many workers as cores, access
// log off, keep-alive connections to the app (upstream keepalive), the
// Host and X-Forwarded-For headers set as Hangar sets them, client
// keep-alive limits like Hangar's (60s idle, no request count limit), and
// bodies streamed both ways as Hangar does (no request or response
// buffering, which would write a 1 MiB body to temporary files, and no
// body size limit).
func nginxConf(dir, backAddr string, port, tlsPort, maxConns int, certFile, keyFile string) string {
	tlsServer := ""
	if tlsPort > 0 {
		tlsServer = fmt.Sprintf(`
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }`, tlsPort, certFile, keyFile)
	}
	return fmt.Sprintf(`worker_processes auto;
worker_rlimit_nofile %[5]d;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[4]d; }
http {
  access_log off;
  keepalive_timeout 60s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  client_body_temp_path %[1]s/tmp;
  proxy_temp_path %[1]s/tmp;
  fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp;
  scgi_temp_path %[1]s/tmp;
  upstream app { server %[2]s; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }%[6]s
}
`, dir, backAddr, port, maxConns+64, min(2*maxConns+256, int(fileLimit())), tlsServer)
}

func startNginx(b *testing.B, dir, backAddr string, maxConns int, certFile, keyFile string) (contender, bool) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		b.Log("nginx not installed (apt-get install -y nginx); skipping it")
		return contender{}, false
	}
	port, tlsPort := freePort(b), 0
	if certFile != "" {
		tlsPort = freePort(b)
	}
	ndir := filepath.Join(dir, "nginx")
	_ = os.MkdirAll(filepath.Join(ndir, "tmp"), 0o755)
	confPath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(nginxConf(ndir, backAddr, port, tlsPort, maxConns, certFile, keyFile)), 0o644); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	p := startProc(b, url, "", nginx, "-p", ndir, "-c", confPath, "-e", filepath.Join(ndir, "error.log"))
	c := contender{name: "nginx", url: url, pid: p.Pid}
	if tlsPort > 0 {
		c.tlsURL = fmt.Sprintf("https://127.0.0.1:%d/", tlsPort)
	}
	return c, true
}

// haproxyConf is HAProxy's configuration: its default threads (one per
// core), HTTP mode with keep-alive on both sides and idle connections to
// the app reused by any client ("http-reuse always", as Hangar and nginx
// pool theirs), X-Forwarded-For added, no logging, timeouts like
// Hangar's.
func haproxyConf(backAddr string, port, maxConns int) string {
	return fmt.Sprintf(`global
  maxconn %[3]d
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 10s
  timeout http-keep-alive 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:%[2]d
  maxconn %[3]d
  default_backend app
backend app
  server app %[1]s
`, backAddr, port, haproxyMaxConn(maxConns))
}

// haproxyMaxConn is HAProxy's maxconn for maxConns client connections:
// it reserves two file descriptors per connection (client and server),
// so under this process's file limit it may get fewer.
func haproxyMaxConn(maxConns int) int {
	return min(maxConns+64, (int(fileLimit())-256)/2)
}

// fileLimit is this process's open file limit (inherited by the
// contenders).
func fileLimit() uint64 {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	return l.Cur
}

func startHAProxy(b *testing.B, dir, backAddr string, maxConns int) (contender, bool) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		b.Log("haproxy not installed (apt-get install -y haproxy); skipping it")
		return contender{}, false
	}
	port := freePort(b)
	confPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(confPath, []byte(haproxyConf(backAddr, port, maxConns)), 0o644); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	p := startProc(b, url, "", haproxy, "-db", "-f", confPath)
	return contender{name: "haproxy", url: url, pid: p.Pid}, true
}

func startCaddy(b *testing.B, dir, backAddr string) (contender, bool) {
	caddy, err := exec.LookPath("caddy")
	if err != nil {
		b.Log("caddy not installed (apt-get install -y caddy); skipping it")
		return contender{}, false
	}
	port := freePort(b)
	conf := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n}\nhttp://127.0.0.1:%d {\n\treverse_proxy %s\n}\n", port, backAddr)
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	p := startProc(b, url, "", caddy, "run", "--config", confPath, "--adapter", "caddyfile")
	return contender{name: "caddy", url: url, pid: p.Pid}, true
}

// writeCert writes a self-signed ECDSA P-256 certificate for 127.0.0.1
// (both TLS contenders serve the same one).
func writeCert(b *testing.B, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.bench.test"},
		DNSNames: []string{"app.bench.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		b.Fatal(err)
	}
	return certFile, keyFile
}

// rounds runs every contender rounds times, interleaved (so that load
// bursts from other work on a shared host hit them alike, the order
// rotating each round), after one warm-up run each, and returns each
// one's median.
func rounds(b *testing.B, cs []contender, n int, run func(c contender, d time.Duration) wrkResult, d time.Duration) []wrkResult {
	per := make([][]wrkResult, len(cs))
	for _, c := range cs {
		_ = run(c, time.Second) // fill keep-alive pools
	}
	for round := 0; round < n; round++ {
		for k := range cs {
			j := (k + round) % len(cs)
			per[j] = append(per[j], run(cs[j], d))
		}
	}
	out := make([]wrkResult, len(cs))
	for j := range cs {
		out[j] = medianResult(per[j])
	}
	return out
}

// table prints results with their ratios to direct (if present), nginx
// and HAProxy; unit scales req/s into the figure printed (1 for req/s).
func table(b *testing.B, title string, rs []wrkResult, unit string, scale float64) {
	find := func(name string) *wrkResult {
		for i := range rs {
			if rs[i].name == name {
				return &rs[i]
			}
		}
		return nil
	}
	ratio := func(r wrkResult, o *wrkResult) string {
		if o == nil || o.rps == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", r.rps/o.rps)
	}
	p99ratio := func(r wrkResult, o *wrkResult) string {
		if o == nil || o.p99 == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", float64(r.p99)/float64(o.p99))
	}
	direct, ng, hp := find("direct"), find("nginx"), find("haproxy")
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s\n", title)
	fmt.Fprintf(&sb, "%-10s %12s %10s %10s %9s %9s %9s %11s %11s\n", "", unit, "p50", "p99", "x direct", "x nginx", "x haproxy", "p99/nginx", "p99/haproxy")
	for _, r := range rs {
		fmt.Fprintf(&sb, "%-10s %12.1f %10v %10v %9s %9s %9s %11s %11s %s\n", r.name, r.rps*scale, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond),
			ratio(r, direct), ratio(r, ng), ratio(r, hp), p99ratio(r, ng), p99ratio(r, hp), r.errors)
	}
	b.Log(sb.String())
	fmt.Print(sb.String())
}

// BenchmarkProxy: wrk, keep-alive HTTP/1.1, small responses, at 32 and
// at 256 connections; then at 32 connections with a CPU-bound process of
// the benchmark's own on each core.
func BenchmarkProxy(b *testing.B) {
	e := newEnv(b, envOpts{})
	dur, n := benchSeconds(3*time.Second), benchRounds(3)
	for i := 0; i < b.N; i++ {
		for _, conns := range []int{32, 256} {
			rs := rounds(b, e.cs, n, func(c contender, d time.Duration) wrkResult {
				return runWrk(b, c.name, c.url, c.host, d, conns)
			}, dur)
			table(b, fmt.Sprintf("proxy, quiet: wrk -t1 -c%d, keep-alive HTTP/1.1, small responses; median of %d interleaved rounds of %v", conns, n, dur), rs, "req/s", 1)
			for _, r := range rs {
				b.ReportMetric(r.rps, fmt.Sprintf("%s-c%d-req/s", r.name, conns))
			}
		}
		stop := cpuHogs(b, runtime.NumCPU())
		rs := rounds(b, e.cs, n, func(c contender, d time.Duration) wrkResult {
			return runWrk(b, c.name, c.url, c.host, d, 32)
		}, dur)
		stop()
		table(b, fmt.Sprintf("proxy, loaded (a busy loop per core): wrk -t1 -c32, keep-alive HTTP/1.1, small responses; median of %d interleaved rounds of %v", n, dur), rs, "req/s", 1)
	}
}

// cpuHogs starts n CPU-bound processes (busy shell loops) and returns a
// function that stops them.
func cpuHogs(b *testing.B, n int) func() {
	var cmds []*exec.Cmd
	for i := 0; i < n; i++ {
		cmd := exec.Command("sh", "-c", "while :; do :; done")
		if err := cmd.Start(); err != nil {
			b.Fatalf("start a busy loop: %v", err)
		}
		cmds = append(cmds, cmd)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
	b.Cleanup(stop)
	return stop
}

// BenchmarkProxyBandwidth: a 1 MiB response and a 1 MiB upload, 8
// keep-alive connections, in MiB/s.
func BenchmarkProxyBandwidth(b *testing.B) {
	e := newEnv(b, envOpts{})
	dur, n := benchSeconds(3*time.Second), benchRounds(3)
	script := filepath.Join(e.dir, "upload.lua")
	if err := os.WriteFile(script, []byte("wrk.method = \"POST\"\nwrk.body = string.rep(\"x\", 1048576)\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rs := rounds(b, e.cs, n, func(c contender, d time.Duration) wrkResult {
			return runWrk(b, c.name, c.url+"blob?n=1048576", c.host, d, 8)
		}, dur)
		table(b, fmt.Sprintf("proxy, 1 MiB responses: wrk -t1 -c8, keep-alive; median of %d interleaved rounds of %v", n, dur), rs, "MiB/s", 1)
		rs = rounds(b, e.cs, n, func(c contender, d time.Duration) wrkResult {
			return runWrkArgs(b, c.name, c.url+"sink", c.host, d, 8, "-s", script)
		}, dur)
		table(b, fmt.Sprintf("proxy, 1 MiB uploads: wrk -t1 -c8, keep-alive; median of %d interleaved rounds of %v", n, dur), rs, "MiB/s", 1)
	}
}

// BenchmarkProxyConnect: new connections per second (a small request per
// connection, "Connection: close"), plain and with TLS (a full handshake
// per connection; Hangar and nginx only), and HTTPS keep-alive requests
// per second.
func BenchmarkProxyConnect(b *testing.B) {
	e := newEnv(b, envOpts{tls: true})
	dur, n := benchSeconds(3*time.Second), benchRounds(3)
	for i := 0; i < b.N; i++ {
		rs := rounds(b, e.cs, n, func(c contender, d time.Duration) wrkResult {
			return runWrkArgs(b, c.name, c.url, c.host, d, 32, "-H", "Connection: close")
		}, dur)
		table(b, fmt.Sprintf("proxy, new connections: wrk -t1 -c32, one small request per connection; median of %d interleaved rounds of %v", n, dur), rs, "conn/s", 1)
		var tcs []contender
		for _, c := range e.cs {
			if c.tlsURL != "" {
				tcs = append(tcs, c)
			}
		}
		rs = rounds(b, tcs, n, func(c contender, d time.Duration) wrkResult {
			return runWrkArgs(b, c.name, c.tlsURL, c.host, d, 32, "-H", "Connection: close")
		}, dur)
		table(b, fmt.Sprintf("proxy, TLS handshakes: wrk -t1 -c32 over TLS (ECDSA P-256), one small request per connection; median of %d interleaved rounds of %v", n, dur), rs, "conn/s", 1)
		rs = rounds(b, tcs, n, func(c contender, d time.Duration) wrkResult {
			return runWrk(b, c.name, c.tlsURL, c.host, d, 32)
		}, dur)
		table(b, fmt.Sprintf("proxy, HTTPS keep-alive: wrk -t1 -c32 over TLS, small responses; median of %d interleaved rounds of %v", n, dur), rs, "req/s", 1)
	}
}
