package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveLong serves p through its fast path with a fallback server of
// long timeouts, so that what a test sees is not the header timeout.
func serveLong(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.Serve(ln, &http.Server{ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second})
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// answerWithin sends b on a new connection and returns what comes back
// before the proxy closes it, failing if that takes longer than d.
func answerWithin(t *testing.T, addr string, b []byte, d time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("no answer and close within %v to %q (got %q): %v", d, b, out, err)
	}
	return string(out)
}

// HTTP/0.9 request lines and TLS handshakes on the plain HTTP port get an
// immediate 400 and close, not a wait for the header timeout.
func TestHTTP09AndTLSOnPlainPortAnsweredAtOnce(t *testing.T) {
	p := New("example.test", "ord", nil)
	var hits atomic.Int32
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }), true)
	addr := serveLong(t, p)
	clientHello := []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"HTTP/0.9", []byte("GET /\r\n"), "HTTP/0.9"},
		{"HTTP/0.9 LF", []byte("GET /index.html\n"), "HTTP/0.9"},
		{"no version", []byte("GET / FOO/1.1\r\n"), "HTTP/0.9"},
		{"TLS ClientHello", clientHello, "TLS handshake"},
	} {
		out := answerWithin(t, addr, tc.in, 2*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, tc.want) {
			t.Errorf("%s: answer %q, want 400 naming %q", tc.name, out, tc.want)
		}
	}
	if hits.Load() != 0 {
		t.Fatal("a bad request reached the app")
	}
	// A TLS client gets a handshake error at once, not a hang.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	tc := tlsClient(c)
	if err := tc.Handshake(); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("TLS handshake on the plain port: %v, want a prompt failure", err)
	}
}

// A new connection that sends nothing is closed after FirstByteTimeout,
// well before the idle timeout.
func TestFirstByteTimeout(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.FirstByteTimeout = 200 * time.Millisecond
	addr := serveLong(t, p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("silent connection read %d bytes, %v", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("silent connection closed after %v, want about 200ms", d)
	}
}

// Idle client connections hold no per-connection buffers: not before
// their first byte, and not once a keep-alive connection has waited
// longer than bufferHold for its next request.
func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	addr := serveLong(t, p)
	const n = 200
	heap := func() uint64 {
		var ms runtime.MemStats
		for i := 0; i < 3; i++ {
			runtime.GC() // twice at least: pooled buffers go at the second
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	base := heap()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	poll(t, "every connection accepted", func() bool { return p.ConnStats().Open == n })
	per := perConn(heap(), base, n)
	t.Logf("heap per silent connection: %d bytes", per)
	if per > 8<<10 {
		t.Errorf("silent connections hold %d bytes of heap each; want no buffers before the first byte", per)
	}
	// One request on each, then idle past bufferHold.
	for _, c := range conns {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(bufferHold + 500*time.Millisecond) // the buffers are given back after bufferHold
	per = perConn(heap(), base, n)
	t.Logf("heap per idle keep-alive connection: %d bytes", per)
	if per > 8<<10 {
		t.Errorf("idle keep-alive connections hold %d bytes of heap each; want their buffers given back", per)
	}
	// They still serve.
	c := conns[0]
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request on a connection that gave its buffers back: %v %v", resp, err)
	}
}

func perConn(now, base uint64, n int) int64 {
	if now < base {
		return 0
	}
	return int64(now-base) / int64(n)
}

// syncBuffer is a log sink for tests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(b)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Connections over MaxConnsPerIP or MaxConns get 503 at once, are counted
// and logged; closing one makes room again.
func TestConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		name         string
		all, perIP   int
		wantRefusals func(ConnStats) uint64
		wantLog      string
	}{
		{"per client address", 0, 3, func(s ConnStats) uint64 { return s.RefusedPerIP }, "too many open"},
		{"in all", 3, 0, func(s ConnStats) uint64 { return s.Refused }, "raise Proxy.MaxConns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			p := New("example.test", "ord", slog.New(slog.NewTextHandler(&logs, nil)))
			p.MaxConns, p.MaxConnsPerIP = tc.all, tc.perIP
			p.SetBackend(backend(t, "m1", nil), true)
			addr := serveLong(t, p)
			var held []net.Conn
			for i := 0; i < 3; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				held = append(held, c)
			}
			poll(t, "3 connections open", func() bool { return p.ConnStats().Open == 3 })
			out := answerWithin(t, addr, []byte("GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n"), 2*time.Second)
			if !strings.HasPrefix(out, "HTTP/1.1 503 ") {
				t.Fatalf("connection over the limit got %q, want 503", out)
			}
			if n := tc.wantRefusals(p.ConnStats()); n != 1 {
				t.Fatalf("refusals counted %d, want 1 (%+v)", n, p.ConnStats())
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Fatalf("log %q does not say %q", logs.String(), tc.wantLog)
			}
			held[0].Close()
			poll(t, "a closed connection leaves the count", func() bool { return p.ConnStats().Open == 2 })
			resp, body := do(t, addr, "GET", "web.example.test", "/", nil, nil)
			if resp.StatusCode != 200 || body != "m1" {
				t.Fatalf("after room was made: %d %q", resp.StatusCode, body)
			}
		})
	}
}

// Pooled connections to machines are closed on a timer once idle, not
// only when the next request finds them stale.
func TestIdleBackendConnectionsClosed(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.backendIdle = 100 * time.Millisecond
	var closed atomic.Int32
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "m1") }))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	p.SetBackend(Backend{App: "web", MachineID: "m1", Region: "local", Addr: strings.TrimPrefix(s.URL, "http://")}, true)
	addr := serveLong(t, p)
	if resp, body := do(t, addr, "GET", "web.example.test", "/", nil, nil); resp.StatusCode != 200 || body != "m1" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	poll(t, "the idle connection to the machine closed", func() bool { return closed.Load() == 1 })
}

func tlsClient(c net.Conn) *tls.Conn {
	return tls.Client(c, &tls.Config{ServerName: "web.example.test", InsecureSkipVerify: true})
}

// The HTTPS listener (net/http with TLS) shares the limits through
// LimitListener: a connection over them is closed at once.
func TestLimitListener(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.MaxConnsPerIP = 2
	p.SetBackend(backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(p)
	s.Listener.Close()
	s.Listener = p.LimitListener(ln)
	s.StartTLS()
	t.Cleanup(s.Close)
	dial := func() (*tls.Conn, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		tc := tlsClient(c)
		return tc, tc.Handshake()
	}
	for i := 0; i < 2; i++ {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d under the limit: %v", i, err)
		}
		defer c.Close()
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a third TLS connection from one address was served; MaxConnsPerIP is 2")
	}
	if st := p.ConnStats(); st.RefusedPerIP != 1 || st.Open != 2 {
		t.Fatalf("ConnStats %+v, want 2 open and 1 refused", st)
	}
}
