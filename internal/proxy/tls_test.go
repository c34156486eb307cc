package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// testCert is a self-signed ECDSA P-256 certificate for *.example.test
// and *.test.
func testCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.test"},
		DNSNames: []string{"*.example.test", "*.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// logBuf collects a server's error log.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveTLS serves p's HTTPS on a real listener through ServeTLS (h2 and
// HTTP/1.1 offered, as the daemon's listener); it returns the address
// and the fallback server's error log.
func serveTLS(t *testing.T, p *Proxy) (string, *logBuf) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{testCert(t)}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	errs := &logBuf{}
	fb := &http.Server{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second, ErrorLog: log.New(errs, "", 0)}
	go func() { _ = p.ServeTLS(ln, cfg, fb) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return ln.Addr().String(), errs
}

// tlsTransport is an HTTPS client transport to addr (h2 if asked), with
// the bytes on the wire counted.
func tlsTransport(addr string, h2 bool, sent, received *atomic.Uint64) *http.Transport {
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: protos}, ForceAttemptHTTP2: h2}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil || sent == nil {
			return c, err
		}
		return wireConn{Conn: c, in: received, out: sent}, nil
	}
	return tr
}

// HTTP/1.1 over TLS is served on the fast path: the app gets the HTTPS
// forwarded headers; requests the fast path hands to net/http on the
// same connection (FallbackPrefixes) see the TLS too; the connection
// counts once, with its bytes on the wire (TLS included), for its app.
func TestServeTLSFastPath(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.HTTPSPort = "8443"
	p.FallbackPrefixes = []string{"/fb/"}
	var mu sync.Mutex
	var got []http.Header
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := r.Header.Clone()
		h.Set("X-Path", r.URL.Path)
		got = append(got, h)
		mu.Unlock()
		io.WriteString(w, strings.Repeat("y", 3000))
	}), true)
	addr, errs := serveTLS(t, p)
	var sent, received atomic.Uint64
	tr := tlsTransport(addr, false, &sent, &received)
	client := &http.Client{Transport: tr}
	for _, path := range []string{"/a", "/b", "/fb/c", "/fb/d"} {
		req, _ := http.NewRequest("GET", "https://web.example.test"+path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 3000 || resp.ProtoMajor != 1 || resp.TLS == nil {
			t.Fatalf("%s: status %d, %d bytes, %s", path, resp.StatusCode, len(b), resp.Proto)
		}
		if resp.Header.Get("Fly-Request-Id") == "" || resp.Header.Get("Via") == "" {
			t.Fatalf("%s: answer headers %v", path, resp.Header)
		}
	}
	tr.CloseIdleConnections()
	mu.Lock()
	for _, h := range got {
		for name, want := range map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on", "X-Forwarded-Port": "8443", "Fly-Forwarded-Port": "8443", "Fly-Region": "ord"} {
			if v := h.Get(name); v != want {
				t.Errorf("%s: the app got %s %q, want %q", h.Get("X-Path"), name, v, want)
			}
		}
	}
	mu.Unlock()
	poll(t, "the HTTPS connection counted closed", func() bool { return p.Stats()[0].TCPDisconnects == 1 })
	poll(t, "every byte the client sent counted", func() bool { return p.Stats()[0].DataIn == sent.Load() })
	st := p.Stats()[0]
	if st.TCPConnects != 1 || st.Requests[200] != 4 {
		t.Fatalf("connects %d, responses %v", st.TCPConnects, st.Requests)
	}
	// The server may write a close_notify the client closed too early to
	// read.
	if r := received.Load(); st.DataOut < r || st.DataOut > r+64 {
		t.Fatalf("data out %d, the client received %d", st.DataOut, r)
	}
	poll(t, "the connection's limits released", func() bool { return p.ConnStats().Open == 0 })
	if s := errs.String(); s != "" {
		t.Fatalf("error log: %s", s)
	}
}

// A client that negotiates h2 is served HTTP/2 by the fallback server,
// with the TLS state and the connection's traffic counted; an app whose
// requests take the net/http path (force_https) is not redirected over
// TLS.
func TestServeTLSHTTP2AndForceHTTPS(t *testing.T) {
	p := New("test", "ord", nil)
	var proto atomic.Value
	app := func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Header.Get("X-Forwarded-Proto"))
		io.WriteString(w, "app")
	}
	p.SetBackend(Backend{App: "web", MachineID: "m1", Region: "ord", Addr: backend(t, "m1", app).Addr}, true)
	svc := types.MachineService{InternalPort: 8080, Ports: []types.MachinePort{{Port: intp(80), Handlers: []string{"http"}, ForceHTTPS: true}}}
	cfg := &types.MachineConfig{Image: "img", Services: []types.MachineService{svc}}
	p.SetBackend(Backend{App: "sec", MachineID: "m2", Region: "ord", Addr: backend(t, "m2", app).Addr, Service: &svc, Config: cfg}, true)
	addr, _ := serveTLS(t, p)
	for _, tc := range []struct {
		host string
		h2   bool
	}{{"web.test", true}, {"sec.test", true}, {"sec.test", false}} {
		var sent, received atomic.Uint64
		tr := tlsTransport(addr, tc.h2, &sent, &received)
		client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		proto.Store("")
		resp, err := client.Get("https://" + tc.host + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := map[bool]int{true: 2, false: 1}[tc.h2]; resp.StatusCode != 200 || string(b) != "app" || resp.ProtoMajor != want {
			t.Fatalf("%s h2 %v: %d %q over %s", tc.host, tc.h2, resp.StatusCode, b, resp.Proto)
		}
		if v := proto.Load(); v != "https" {
			t.Fatalf("%s h2 %v: the app got X-Forwarded-Proto %q", tc.host, tc.h2, v)
		}
	}
	var st AppStats
	for _, s := range p.Stats() {
		if s.App == "web" {
			st = s
		}
	}
	poll(t, "the h2 connection counted", func() bool {
		for _, s := range p.Stats() {
			if s.App == "web" {
				st = s
			}
		}
		return st.TCPConnects == 1 && st.TCPDisconnects == 1
	})
	if st.DataIn == 0 || st.DataOut == 0 {
		t.Fatalf("h2 traffic not counted: %+v", st)
	}
	poll(t, "the connections' limits released", func() bool { return p.ConnStats().Open == 0 })
}

// A failed handshake is logged as net/http logs it; plain HTTP on the
// HTTPS port gets a 400 that says so; a connection over the limits is
// closed without an answer.
func TestServeTLSHandshakeErrorsAndLimits(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.MaxConnsPerIP = 1
	p.SetBackend(backend(t, "m1", nil), true)
	addr, errs := serveTLS(t, p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasPrefix(string(b), "HTTP/1.0 400 ") || !strings.Contains(string(b), "serves HTTPS") {
		t.Fatalf("plain HTTP on the HTTPS port: %q", b)
	}
	poll(t, "the failed handshake logged", func() bool {
		return strings.Contains(errs.String(), "http: TLS handshake error from 127.0.0.1:")
	})
	// One connection open from this address: the next is closed at once.
	poll(t, "the first connection released", func() bool { return p.ConnStats().Open == 0 })
	c1, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "web.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	getOn(t, c1, bufio.NewReader(c1))
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	tc2 := tls.Client(c2, &tls.Config{InsecureSkipVerify: true})
	if err := tc2.Handshake(); err == nil {
		t.Fatal("a connection over MaxConnsPerIP completed its handshake")
	}
	if p.ConnStats().RefusedPerIP != 1 {
		t.Fatalf("refusals: %+v", p.ConnStats())
	}
	getOn(t, c1, bufio.NewReader(c1)) // the first still serves
}

// TestFastPathTLSAllocations: a keep-alive request over TLS through the
// whole fast path allocates nothing of the proxy's in steady state (the
// TLS records reuse the connection's buffers); what remains is
// crypto/tls's own, one per record read.
func TestFastPathTLSAllocations(t *testing.T) {
	const body = "hello from the app\n"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body)
	p := New("example.test", "ord", nil)
	p.SetBackend(Backend{App: "web", MachineID: "m1", Region: "ord", Addr: rawBackend(t, resp)}, true)
	addr, _ := serveTLS(t, p)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "web.example.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	get := []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: web.example.test\r\nUser-Agent: allocs-test\r\nAccept: */*\r\n\r\n")
	if _, err := c.Write(get); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n := 0
	for !bytes.HasSuffix(buf[:n], []byte(body)) {
		k, err := c.Read(buf[n:])
		if err != nil {
			t.Fatalf("first answer: %v: %q", err, buf[:n])
		}
		n += k
	}
	if answer := string(buf[:n]); !strings.HasPrefix(answer, "HTTP/1.1 200 OK\r\n") || !strings.Contains(answer, "\r\nFly-Request-Id: ") {
		t.Fatalf("answer: %q", answer)
	}
	want := n
	post := []byte("POST /upload HTTP/1.1\r\nHost: web.example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	for name, req := range map[string][]byte{"GET": get, "POST with body": post} {
		for range 50 {
			roundTrip(t, c, req, buf, want) // warm the pools
		}
		runtime.GC()
		// crypto/tls allocates one small reader per record it reads
		// (Conn.readFromUntil), on each side: the request's record in the
		// proxy, the answer's in the client. Nothing else may allocate
		// (net/http's path makes dozens).
		allocs := testing.AllocsPerRun(500, func() { roundTrip(t, c, req, buf, want) })
		if raceEnabled {
			t.Logf("%s over TLS: %.2f allocations per request (race detector: not checked)", name, allocs)
			continue
		}
		if allocs > 2 {
			t.Errorf("%s over TLS: %.2f allocations per proxied request, want at most 2 (crypto/tls's record reads)", name, allocs)
		}
	}
}

// A protocol upgrade (a WebSocket) over TLS, after a request served on
// the fast path on the same connection, is handed to net/http and
// carries both ways; the app sees X-Forwarded-Proto https.
func TestServeTLSUpgrade(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			io.WriteString(w, "plain "+r.Header.Get("X-Forwarded-Proto"))
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
		brw.WriteString("echo " + r.Header.Get("X-Forwarded-Proto") + " " + line)
		brw.Flush()
	}), true)
	addr, _ := serveTLS(t, p)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "web.example.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "plain https" {
		t.Fatalf("first request: %q", b)
	}
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: web.example.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo https hello\n" {
		t.Fatalf("after upgrade: %q %v", line, err)
	}
}
