package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/flyreplay"
	"github.com/hangar-dev/hangar/internal/types"
)

// serveFast serves p on a fast-path listener and returns its address.
func serveFast(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln, nil) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func do(t *testing.T, addr, method, host, path string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(string(body)))
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The first fly-replay answer the fast path sees for a request without a
// body is served again through the net/http path, which follows it; after
// that the app's requests (with bodies) take that path and are replayed
// with their bodies intact.
func TestFastPathFlyReplay(t *testing.T) {
	var firstHits int
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		firstHits++
		w.Header().Set(flyreplay.HeaderReplay, "instance=m2")
		io.WriteString(w, "replay me")
	}))
	defer first.Close()
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		src, err := flyreplay.ParseSrc(r.Header.Get(flyreplay.HeaderReplaySrc))
		fmt.Fprintf(w, "m2 from=%s err=%v sum=%x", src.Instance, err, sha256.Sum256(b))
	}))
	defer second.Close()
	p := New("test", "local", nil)
	p.SetBackend(Backend{App: "a", MachineID: "m1", Region: "local", Addr: strings.TrimPrefix(first.URL, "http://")}, true)
	p.SetBackend(Backend{App: "a", MachineID: "m2", Region: "local", Addr: strings.TrimPrefix(second.URL, "http://")}, true)
	addr := serveFast(t, p)
	force := map[string]string{"Fly-Force-Instance-Id": "m1"}

	resp, body := do(t, addr, "GET", "a.test", "/", nil, force)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "m2 from=m1 err=<nil>") {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	payload := []byte(strings.Repeat("x", 300<<10))
	resp, body = do(t, addr, "POST", "a.test", "/", payload, force)
	if want := fmt.Sprintf("sum=%x", sha256.Sum256(payload)); resp.StatusCode != 200 || !strings.HasSuffix(body, want) {
		t.Fatalf("POST: %d %q, want %s", resp.StatusCode, body, want)
	}
	resp, body = do(t, addr, "POST", "a.test", "/", make([]byte, 2<<20), force)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MB POST: %d %q, want 413", resp.StatusCode, body)
	}
	// Every request's count ends (the last one's just after its answer).
	deadline := time.Now().Add(5 * time.Second)
	for {
		l1, _ := p.Load("a", "m1")
		l2, _ := p.Load("a", "m2")
		if l1 == 0 && l2 == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loads after the requests: m1 %d, m2 %d", l1, l2)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// force_https redirects plain HTTP on the fast path's listener; an app's
// TLS options are found by host.
func TestForceHTTPSAndTLSOptions(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer backend.Close()
	p := New("test", "local", nil)
	p.HTTPSPort = "8443"
	svc := types.MachineService{InternalPort: 8080, Ports: []types.MachinePort{
		{Port: intp(80), Handlers: []string{"http"}, ForceHTTPS: true},
		{Port: intp(443), Handlers: []string{"tls", "http"}, TLSOptions: &types.TLSOptions{ALPN: []string{"http/1.1"}}},
	}}
	cfg := &types.MachineConfig{Image: "img", Services: []types.MachineService{svc}}
	p.SetBackend(Backend{App: "sec", MachineID: "m1", Addr: strings.TrimPrefix(backend.URL, "http://"), Service: &svc, Config: cfg}, true)
	p.SetBackend(Backend{App: "plain", MachineID: "m2", Addr: strings.TrimPrefix(backend.URL, "http://")}, true)
	addr := serveFast(t, p)
	resp, _ := do(t, addr, "GET", "sec.test", "/x?y=1", nil, nil)
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://sec.test:8443/x?y=1" {
		t.Fatalf("force_https: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := do(t, addr, "GET", "plain.test", "/", nil, nil); resp.StatusCode != 200 || body != "app" {
		t.Fatalf("other app: %d %q", resp.StatusCode, body)
	}
	if o := p.TLSOptions("sec.test"); o == nil || len(o.ALPN) != 1 || o.ALPN[0] != "http/1.1" {
		t.Fatalf("TLS options: %+v", o)
	}
	p.RemoveApp("sec")
	if p.TLSOptions("sec.test") != nil || len(p.AppServices()) != 0 {
		t.Fatal("RemoveApp kept the app's settings")
	}
}

func intp(n int) *int { return &n }

// fly-replay's Target is the load balancer: instance, prefer_instance,
// regions in order ("any"), elsewhere, another app, and ErrNoTarget.
func TestReplayTargetPick(t *testing.T) {
	p := New("test", "ams", nil)
	for _, b := range []Backend{
		{App: "a", MachineID: "m1", Region: "ams", Addr: "127.0.0.1:1"},
		{App: "a", MachineID: "m2", Region: "ams", Addr: "127.0.0.1:2"},
		{App: "a", MachineID: "m3", Region: "ord", Addr: "127.0.0.1:3"},
		{App: "b", MachineID: "m4", Region: "ams", Addr: "127.0.0.1:4"},
	} {
		p.SetBackend(b, true)
	}
	from := flyreplay.Machine{App: "a", ID: "m1", Region: "ams"}
	tg := replayTarget{p}
	for _, tc := range []struct {
		header string
		want   []string // any of
	}{
		{"instance=m3", []string{"m3"}},
		{"prefer_instance=m2", []string{"m2"}},
		{"region=ord", []string{"m3"}},
		{`region="syd,ord"`, []string{"m3"}},
		{`region="syd,any"`, []string{"m1", "m2", "m3"}},
		{"region=ams;elsewhere=true", []string{"m2"}},
		{"app=b", []string{"m4"}},
		{"region=syd", nil},
		{"instance=nope", nil},
	} {
		d, err := flyreplay.Parse(tc.header)
		if err != nil {
			t.Fatal(err)
		}
		var exclude []flyreplay.Machine
		if d.Elsewhere {
			exclude = []flyreplay.Machine{from}
		}
		rq := &request{}
		ctx := context.WithValue(context.Background(), ctxKey{}, rq)
		m, err := tg.Pick(ctx, d, from, exclude)
		if tc.want == nil {
			if !errors.Is(err, flyreplay.ErrNoTarget) {
				t.Errorf("%s: %v %v, want ErrNoTarget", tc.header, m, err)
			}
			continue
		}
		if err != nil || !slices.Contains(tc.want, m.ID) {
			t.Errorf("%s: %v %v, want one of %v", tc.header, m, err, tc.want)
		}
		// The pick is counted until the request ends.
		if l, _ := p.Load(m.App, m.ID); l != 1 {
			t.Errorf("%s: load of %s = %d while picked", tc.header, m.ID, l)
		}
		for _, h := range rq.replay {
			p.release(h.a, h.m)
		}
	}
}
