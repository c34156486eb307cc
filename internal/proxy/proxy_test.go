package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func backend(t *testing.T, name string, h http.HandlerFunc) Backend {
	t.Helper()
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return Backend{App: "web", MachineID: name, Region: "local", Addr: strings.TrimPrefix(s.URL, "http://")}
}

// front serves p on a real listener through its fast path (Serve), as
// the daemon does.
func front(t *testing.T, p *Proxy) *httptest.Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln, &http.Server{ReadHeaderTimeout: 2 * time.Second}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return &httptest.Server{URL: "http://" + ln.Addr().String(), Listener: ln}
}

// frontStd serves p with net/http only (the fallback path).
func frontStd(t *testing.T, p *Proxy) *httptest.Server {
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, s *httptest.Server, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestRoutesByHostAndSetsHeaders(t *testing.T) {
	p := New("example.test", "local", nil)
	var got http.Header
	b := backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		io.WriteString(w, "hello")
	})
	p.SetBackend(b, true)
	s := front(t, p)
	resp, body := get(t, s, "web.example.test", "/")
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Fly-Request-Id") == "" {
		t.Error("no Fly-Request-Id on the response")
	}
	for _, h := range []string{"Fly-Client-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "Fly-Region", "Via"} {
		if got.Get(h) == "" {
			t.Errorf("app did not get %s", h)
		}
	}
	if got.Get("Fly-Client-Ip") != "127.0.0.1" {
		t.Errorf("Fly-Client-IP = %q", got.Get("Fly-Client-Ip"))
	}
	resp, body = get(t, s, "other.example.test", "/")
	if resp.StatusCode != 503 || !strings.Contains(body, "app other has no machines") {
		t.Fatalf("unknown app: %d %q", resp.StatusCode, body)
	}
	resp, body = get(t, s, "elsewhere.invalid", "/")
	if resp.StatusCode != 404 || !strings.Contains(body, "no app is served") {
		t.Fatalf("foreign host: %d %q", resp.StatusCode, body)
	}
	// A custom hostname reaches its app through HostApp.
	p.HostApp = func(host string) string {
		if host == "www.custom.test" {
			return "web"
		}
		return ""
	}
	resp, body = get(t, s, "www.custom.test", "/")
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("custom hostname: %d %q", resp.StatusCode, body)
	}
}

func TestUnhealthyGetsNoTraffic(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(backend(t, "good", nil), true)
	p.SetBackend(backend(t, "bad", nil), false)
	s := front(t, p)
	for i := 0; i < 20; i++ {
		if _, body := get(t, s, "web.example.test", "/"); body != "good" {
			t.Fatalf("request %d went to %q", i, body)
		}
	}
	p.SetBackend(backend(t, "good2", nil), true)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		_, body := get(t, s, "web.example.test", "/")
		seen[body] = true
	}
	if !seen["good"] || !seen["good2"] || seen["bad"] {
		t.Fatalf("spread = %v, want good and good2 only", seen)
	}
	p.SetBackend(Backend{App: "web", MachineID: "bad"}, false)
	p.SetBackend(Backend{App: "web", MachineID: "good"}, false)
	p.SetBackend(Backend{App: "web", MachineID: "good2"}, false)
	resp, body := get(t, s, "web.example.test", "/")
	if resp.StatusCode != 503 || !strings.Contains(body, "no started machine with passing health checks") {
		t.Fatalf("all unhealthy: %d %q", resp.StatusCode, body)
	}
}

// A machine that starts draining gets no new request, and Drain returns
// only once its in-flight request has finished.
func TestDrainWaitsForInflight(t *testing.T) {
	p := New("example.test", "local", nil)
	release := make(chan struct{})
	entered := make(chan struct{})
	p.SetBackend(backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "slow")
	}), true)
	p.SetBackend(backend(t, "other", nil), true)
	s := front(t, p)
	// Make sure the slow request lands on "slow": take "other" out first.
	p.SetBackend(Backend{App: "web", MachineID: "other", Addr: p.machineLocked("web", "other").b.Addr}, false)
	var wg sync.WaitGroup
	wg.Add(1)
	var slowBody string
	go func() { defer wg.Done(); _, slowBody = get(t, s, "web.example.test", "/slow") }()
	<-entered
	p.SetBackend(Backend{App: "web", MachineID: "other", Addr: p.machineLocked("web", "other").b.Addr}, true)
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background(), "web", "slow") }()
	// While draining, new requests go elsewhere.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		d := p.machineLocked("web", "slow").draining
		p.mu.Unlock()
		if d {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 10; i++ {
		if _, body := get(t, s, "web.example.test", "/"); body != "other" {
			t.Fatalf("draining machine got a new request")
		}
	}
	select {
	case <-drained:
		t.Fatal("Drain returned with a request in flight")
	default:
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if slowBody != "slow" {
		t.Fatalf("in-flight request got %q", slowBody)
	}
}

func TestLeastLoaded(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(Backend{App: "a", MachineID: "x"}, true)
	p.SetBackend(Backend{App: "a", MachineID: "y"}, true)
	ctx := context.Background()
	a, m1, _, _ := p.acquire(ctx, "a", routing{})
	_, m2, _, _ := p.acquire(ctx, "a", routing{})
	if m1 == nil || m2 == nil || m1 == m2 {
		t.Fatal("second request went to the busier machine")
	}
	p.release(a, m1)
	_, m3, _, _ := p.acquire(ctx, "a", routing{})
	if m3 != m1 {
		t.Fatal("request did not go to the idle machine")
	}
}

func FuzzAppForHost(f *testing.F) {
	p := New("example.test", "local", nil)
	for _, s := range []string{"web.example.test", "web.example.test:80", "a.b.example.test", "", ":", "[::1]:80", ".example.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		app := p.AppForHost(host)
		for _, c := range []byte(app) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				t.Fatalf("AppForHost(%q) = %q: not an app name", host, app)
			}
		}
		if app != "" && !strings.HasPrefix(strings.ToLower(host), app+".") {
			t.Fatalf("AppForHost(%q) = %q: not the host's first label", host, app)
		}
	})
}

// A machine whose app has not bound its port yet: the request is retried
// until it answers instead of failing with 502.
func TestRetriesRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := New("example.test", "local", nil)
	p.SetBackend(Backend{App: "web", MachineID: "late", Addr: addr}, true)
	s := front(t, p)
	go func() {
		time.Sleep(150 * time.Millisecond)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "late but here") })}
		t.Cleanup(func() { srv.Close() })
		_ = srv.Serve(ln)
	}()
	resp, body := get(t, s, "web.example.test", "/")
	if resp.StatusCode != 200 || body != "late but here" {
		t.Fatalf("got %d %q, want the retried answer", resp.StatusCode, body)
	}
	// On the fast path the body is still unread when the dial fails, so a
	// POST is retried too and reaches a machine that comes up late.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr2 := ln2.Addr().String()
	ln2.Close()
	p.SetBackend(Backend{App: "web", MachineID: "late", Addr: addr2}, true)
	go func() {
		time.Sleep(150 * time.Millisecond)
		ln, err := net.Listen("tcp", addr2)
		if err != nil {
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "got "+string(b))
		})}
		t.Cleanup(func() { srv.Close() })
		_ = srv.Serve(ln)
	}()
	req, _ := http.NewRequest("POST", s.URL+"/", strings.NewReader("payload"))
	req.Host = "web.example.test"
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || string(b2) != "got payload" {
		t.Fatalf("POST to a late machine: %d %q", r2.StatusCode, b2)
	}
	// Through net/http (the fallback path) a POST body cannot be replayed:
	// it fails fast once nobody listens.
	p.SetBackend(Backend{App: "web", MachineID: "late", Addr: "127.0.0.1:1"}, true)
	std := frontStd(t, p)
	req, _ = http.NewRequest("POST", std.URL+"/", strings.NewReader("payload"))
	req.Host = "web.example.test"
	start := time.Now()
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusBadGateway || time.Since(start) > time.Second {
		t.Fatalf("POST to a dead machine: %d after %v, want a fast 502", r3.StatusCode, time.Since(start))
	}
}
