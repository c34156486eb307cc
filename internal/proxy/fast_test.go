package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// raw sends bytes on a new connection and returns what comes back until
// the proxy closes it or 2s pass.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	// Write while reading: the proxy may answer (413, 400) and close
	// before it has read all of a large request, as a server should.
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, req)
		werr <- err
	}()
	b, _ := io.ReadAll(c)
	if err := <-werr; err != nil && len(b) == 0 {
		t.Fatalf("write: %v, and no answer", err)
	}
	return string(b)
}

func TestHeadersToAppAndClient(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.Port = "8443"
	got := make(chan http.Header, 1)
	b := backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Server", "app/1.0")
		w.Header().Set("X-Powered-By", "php")
		w.Header().Set("X-App", "yes")
		io.WriteString(w, "ok")
	})
	b.Service = &types.MachineService{Ports: []types.MachinePort{{HTTPOptions: &types.HTTPOptions{Response: &types.HTTPResponseOptions{
		Headers: map[string]interface{}{"X-Frame-Options": "DENY", "x-powered-by": false, "X-Multi": []interface{}{"a", "b"}},
	}}}}}
	p.SetBackend(b, true)
	s := front(t, p)
	req, _ := http.NewRequest("GET", s.URL+"/", nil)
	req.Host = "web.example.test"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Fly-Client-IP", "6.6.6.6") // spoofed: replaced
	req.Header.Set("Fly-Prefer-Region", "ord")
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "hop-by-hop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := <-got
	want := map[string]string{
		"Fly-Client-Ip": "127.0.0.1", "X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "http",
		"X-Forwarded-Port": "8443", "X-Forwarded-Ssl": "off", "Fly-Forwarded-Port": "8443", "Fly-Region": "ord", "Via": "1.1 hangar",
	}
	for k, v := range want {
		if h.Get(k) != v || len(h.Values(k)) != 1 {
			t.Errorf("app got %s = %q, want %q", k, h.Values(k), v)
		}
	}
	for _, k := range []string{"Fly-Prefer-Region", "X-Secret"} {
		if h.Get(k) != "" {
			t.Errorf("app got %s; routing and hop-by-hop headers must not reach it", k)
		}
	}
	if resp.Header.Get("Fly-Request-Id") == "" || !strings.HasSuffix(resp.Header.Get("Fly-Request-Id"), "-ord") || h.Get("Fly-Request-Id") != resp.Header.Get("Fly-Request-Id") {
		t.Errorf("Fly-Request-Id: client %q, app %q", resp.Header.Get("Fly-Request-Id"), h.Get("Fly-Request-Id"))
	}
	if resp.Header.Get("Server") != "Hangar" || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Powered-By") != "" ||
		strings.Join(resp.Header.Values("X-Multi"), ",") != "a,b" || resp.Header.Get("X-App") != "yes" {
		t.Errorf("response headers: %v", resp.Header)
	}

	// pristine: the app's headers reach the client untouched.
	pr := true
	b.Service.Ports[0].HTTPOptions.Response.Pristine = &pr
	p.SetBackend(b, true)
	resp, _ = get(t, s, "web.example.test", "/")
	<-got
	if resp.Header.Get("Server") != "app/1.0" || resp.Header.Get("Fly-Request-Id") != "" || resp.Header.Get("X-Powered-By") != "php" || resp.Header.Get("X-Frame-Options") != "" {
		t.Errorf("pristine response headers: %v", resp.Header)
	}
}

// Malformed requests get 4xx/5xx from the proxy and never reach the app.
func TestMalformedRequestsNeverReachTheApp(t *testing.T) {
	p := New("example.test", "local", nil)
	var hits atomic.Int32
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "ok") }), true)
	s := front(t, p)
	addr := strings.TrimPrefix(s.URL, "http://")
	cases := map[string]struct{ req, status string }{
		"CL and TE":          {"POST / HTTP/1.1\r\nHost: web.example.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		"two CLs":            {"POST / HTTP/1.1\r\nHost: web.example.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"},
		"bad CL":             {"POST / HTTP/1.1\r\nHost: web.example.test\r\nContent-Length: -1\r\n\r\n", "400"},
		"TE gzip":            {"POST / HTTP/1.1\r\nHost: web.example.test\r\nTransfer-Encoding: gzip\r\n\r\n", "501"},
		"no host":            {"GET / HTTP/1.1\r\n\r\n", "400"},
		"two hosts":          {"GET / HTTP/1.1\r\nHost: web.example.test\r\nHost: other.example.test\r\n\r\n", "400"},
		"space before colon": {"GET / HTTP/1.1\r\nHost : web.example.test\r\n\r\n", "400"},
		"obs-fold":           {"GET / HTTP/1.1\r\nHost: web.example.test\r\nX-A: 1\r\n  2\r\n\r\n", "400"},
		"bad method":         {"G(T / HTTP/1.1\r\nHost: web.example.test\r\n\r\n", "400"},
		"bad version":        {"GET / HTTP/9.9\r\nHost: web.example.test\r\n\r\n", "505"},
		"ctl in value":       {"GET / HTTP/1.1\r\nHost: web.example.test\r\nX-A: a\x00b\r\n\r\n", "400"},
		"huge header":        {"GET / HTTP/1.1\r\nHost: web.example.test\r\nX-A: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", "431"},
		"bad chunk":          {"POST / HTTP/1.1\r\nHost: web.example.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "400"},
		"garbage":            {"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", "400"},
	}
	for name, c := range cases {
		out := raw(t, addr, c.req)
		if !strings.HasPrefix(out, "HTTP/1.1 "+c.status) {
			t.Errorf("%s: got %q, want %s", name, truncate(out, 120), c.status)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the app saw %d malformed requests", n)
	}
	// A well-formed one still works, and a pipelined pair is answered in order.
	out := raw(t, addr, "GET /a HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET /b HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n")
	if strings.Count(out, "HTTP/1.1 200") != 2 || hits.Load() != 2 {
		t.Fatalf("pipelined requests: %q", out)
	}
}

func TestBodiesChunkedStreamingAndLimits(t *testing.T) {
	p := New("example.test", "local", nil)
	p.MaxBodyBytes = 1 << 20
	flushed := make(chan struct{})
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			fmt.Fprintf(w, "%d:%x", len(b), b[:min(len(b), 8)])
		case "/stream":
			io.WriteString(w, "first;")
			w.(http.Flusher).Flush()
			<-flushed
			io.WriteString(w, "second")
		case "/head":
			w.Header().Set("Content-Length", "5")
		case "/both":
			// An app that sends Content-Length and chunked framing.
			c, brw, _ := http.NewResponseController(w).Hijack()
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			brw.Flush()
			c.Close()
		}
	}), true)
	s := front(t, p)
	addr := strings.TrimPrefix(s.URL, "http://")

	// A chunked request body (unknown length) reaches the app whole.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 100; i++ {
			pw.Write(bytes.Repeat([]byte{byte(i)}, 1000))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", s.URL+"/echo", pr)
	req.Host = "web.example.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "100000:0000000000000000" {
		t.Fatalf("chunked upload: %q", body)
	}
	// A streamed (chunked) response reaches the client before it ends.
	req, _ = http.NewRequest("GET", s.URL+"/stream", nil)
	req.Host = "web.example.test"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("first part: %q %v", first, err)
	}
	close(flushed)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second" {
		t.Fatalf("rest: %q", rest)
	}
	// HEAD: headers only.
	out := raw(t, addr, "HEAD /head HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200") || !strings.HasSuffix(out, "\r\n\r\n") || !strings.Contains(out, "Content-Length: 5") {
		t.Fatalf("HEAD: %q", out)
	}
	// Content-Length and chunked from the app: the client gets one framing.
	out = raw(t, addr, "GET /both HTTP/1.1\r\nHost: web.example.test\r\nConnection: close\r\n\r\n")
	if strings.Contains(out, "Content-Length: 100") || !strings.Contains(out, "Transfer-Encoding: chunked") || !strings.HasSuffix(out, "3\r\nabc\r\n0\r\n\r\n") {
		t.Fatalf("both framings: %q", out)
	}
	// Over the body limit: 413 before the app sees anything (declared
	// length) or as soon as the limit is crossed (chunked).
	out = raw(t, addr, fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: web.example.test\r\nContent-Length: %d\r\n\r\n", 2<<20))
	if !strings.HasPrefix(out, "HTTP/1.1 413") {
		t.Fatalf("declared oversize body: %q", truncate(out, 100))
	}
	big := fmt.Sprintf("%x\r\n%s\r\n", 2<<20, strings.Repeat("a", 2<<20))
	out = raw(t, addr, "POST /echo HTTP/1.1\r\nHost: web.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"+big+"0\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 413") {
		t.Fatalf("chunked oversize body: %q", truncate(out, 100))
	}
}

// A WebSocket-style upgrade is handed to the net/http path and works.
func TestUpgradeGoesThroughFallback(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}), true)
	s := front(t, p)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: web.example.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("after upgrade: %q %v", line, err)
	}
}

// A client that sends its headers too slowly is cut off (slowloris), so
// is one whose body stalls, and idle keep-alive connections are closed.
func TestSlowClientsAreCutOff(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.Serve(ln, &http.Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	}()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	for _, first := range []string{"GET / HTTP/1.1\r\nHost: web.exa", "", "POST / HTTP/1.1\r\nHost: web.example.test\r\nContent-Length: 10\r\n\r\nab"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, first)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(c)
		c.Close()
		if err != nil || time.Since(start) > 3*time.Second {
			t.Fatalf("sent %q: connection not closed by the proxy (%v after %v)", first, err, time.Since(start))
		}
	}
}

// Shutdown closes idle connections and waits for requests in flight.
func TestShutdownWaitsForInflight(t *testing.T) {
	p := New("example.test", "local", nil)
	g := newGate()
	p.SetBackend(g.backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln, &http.Server{}) }()
	out := make(chan string, 1)
	goGet(t, "http://"+ln.Addr().String(), "web.example.test", "/slow", out)
	<-g.entered
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	select {
	case <-done:
		t.Fatal("Shutdown returned with a request in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.release)
	if r := <-out; r != "200 m1" {
		t.Fatalf("in-flight request: %q", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
}

// The net/http path (upgrades, HTTP/1.0, TLS listeners) sets the same
// headers as the fast path.
func TestFallbackPathHeaders(t *testing.T) {
	p := New("example.test", "ord", nil)
	got := make(chan http.Header, 1)
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("Server", "app")
	}), true)
	s := frontStd(t, p)
	req, _ := http.NewRequest("GET", s.URL+"/", nil)
	req.Host = "web.example.test"
	req.Header.Set("Fly-Force-Instance-Id", "m1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	for _, k := range []string{"Fly-Client-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Ssl", "Fly-Forwarded-Port", "Fly-Region", "Via", "Fly-Request-Id"} {
		if h.Get(k) == "" {
			t.Errorf("app did not get %s", k)
		}
	}
	if h.Get("Fly-Force-Instance-Id") != "" {
		t.Error("routing header reached the app")
	}
	if resp.Header.Get("Server") != "Hangar" || resp.Header.Get("Fly-Request-Id") != h.Get("Fly-Request-Id") {
		t.Errorf("response headers %v", resp.Header)
	}
}

// The fallback server's handler sees the paths in FallbackPrefixes (the
// certificate manager answers ACME HTTP-01 challenges there); other paths
// take the fast path and never reach it.
func TestFallbackPrefixesReachTheFallbackHandler(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wrapped atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wrapped.Add(1)
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			io.WriteString(w, "key-authorization")
			return
		}
		p.ServeHTTP(w, r)
	})
	go func() { _ = p.Serve(ln, &http.Server{Handler: h}) }()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	s := &httptestServer{URL: "http://" + ln.Addr().String()}
	if _, body := getURL(t, s.URL, "web.example.test", "/.well-known/acme-challenge/tok"); body != "key-authorization" {
		t.Fatalf("challenge: %q", body)
	}
	if _, body := getURL(t, s.URL, "web.example.test", "/"); body != "m1" {
		t.Fatalf("app: %q", body)
	}
	if n := wrapped.Load(); n != 1 {
		t.Fatalf("fallback handler saw %d requests, want only the challenge", n)
	}
}

type httptestServer struct{ URL string }

func getURL(t *testing.T, base, host, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Host = host
	// A new connection each time: a connection handed to the fallback
	// server stays with it.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}
