package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Allocation bounds of the fast path, so that a change that makes it
// allocate per request shows in CI without timing anything. Speed itself
// is measured in bench/ (make bench).

// rawBackend is an app that answers every request on a connection with
// the same canned response, without allocating per request: it reads
// until the end of a head (requests without bodies), or, for a request
// with "Content-Length: N", until N more bytes.
func rawBackend(t *testing.T, resp []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				have := 0
				for {
					end := bytes.Index(buf[:have], []byte("\r\n\r\n"))
					if end < 0 {
						n, err := c.Read(buf[have:])
						if err != nil {
							return
						}
						have += n
						continue
					}
					end += 4
					body := 0
					if i := bytes.Index(buf[:end], []byte("Content-Length: ")); i >= 0 {
						for _, d := range buf[i+len("Content-Length: "):] {
							if d < '0' || d > '9' {
								break
							}
							body = body*10 + int(d-'0')
						}
					}
					for have-end < body {
						n, err := c.Read(buf[have:])
						if err != nil {
							return
						}
						have += n
					}
					copy(buf, buf[end+body:have])
					have -= end + body
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes req on c and reads until want bytes of answer came.
func roundTrip(t *testing.T, c net.Conn, req []byte, buf []byte, want int) {
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	got := 0
	for got < want {
		n, err := c.Read(buf[got:])
		if err != nil {
			t.Fatalf("read the answer (%d of %d bytes): %v: %q", got, want, err, buf[:got])
		}
		got += n
	}
}

// TestFastPathAllocations: a keep-alive request through the whole fast
// path (client connection, parse, pick, header rewrite, pooled machine
// connection, response relay, counters) allocates nothing in steady
// state, with and without a request body. The client and the app are raw
// sockets with fixed buffers, so every allocation counted is the proxy's.
func TestFastPathAllocations(t *testing.T) {
	const body = "hello from the app\n"
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Length: " +
		itoa(len(body)) + "\r\n\r\n" + body)
	p := New("example.test", "ord", nil)
	p.SetBackend(Backend{App: "web", MachineID: "m1", Region: "ord", Addr: rawBackend(t, resp)}, true)
	addr := serveLong(t, p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))

	// The answer's length: learn it once (the request ID has a fixed
	// length, so every answer has the same).
	get := []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: web.example.test\r\nUser-Agent: allocs-test\r\nAccept: */*\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
	if _, err := c.Write(get); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n := 0
	for !bytes.HasSuffix(buf[:n], []byte(body)) {
		k, err := c.Read(buf[n:])
		if err != nil {
			t.Fatalf("first answer: %v: %q", err, buf[:n])
		}
		n += k
	}
	answer := string(buf[:n])
	if !strings.HasPrefix(answer, "HTTP/1.1 200 OK\r\n") || !strings.Contains(answer, "\r\nFly-Request-Id: ") || !strings.Contains(answer, "\r\nVia: 1.1 hangar\r\n") {
		t.Fatalf("answer: %q", answer)
	}
	want := n
	_ = c.SetDeadline(time.Now().Add(time.Minute))

	post := []byte("POST /upload HTTP/1.1\r\nHost: web.example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	for name, req := range map[string][]byte{"GET": get, "POST with body": post} {
		for range 50 {
			roundTrip(t, c, req, buf, want) // warm the pools
		}
		runtime.GC()
		allocs := testing.AllocsPerRun(500, func() { roundTrip(t, c, req, buf, want) })
		if allocs > 0 {
			t.Errorf("%s: %.2f allocations per proxied request, want 0", name, allocs)
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestParseAndRewriteAllocations: parsing a request head, writing it to a
// machine with the forwarded headers, and parsing and relaying a response
// allocate nothing once the connection's buffers exist.
func TestParseAndRewriteAllocations(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.Port = "80"
	reqBytes := []byte("GET /a?b=c HTTP/1.1\r\nHost: web.example.test\r\nAccept: */*\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Forwarded-For: 203.0.113.9\r\nVia: 1.0 other\r\n\r\n")
	respBytes := []byte("HTTP/1.1 200 OK\r\nServer: app\r\nContent-Type: text/plain\r\nVia: 1.1 cdn\r\nContent-Length: 5\r\n\r\nhello")
	cs := &connState{p: p, clientIP: "127.0.0.1"}
	cs.out.c = nopConn{}
	cs.takeBuffers()
	defer cs.putBuffers()
	src := bytes.NewReader(nil)
	br := bufio.NewReaderSize(src, 4<<10)
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	m := &machine{}

	parse := func() {
		src.Reset(reqBytes)
		br.Reset(src)
		var err error
		cs.head, err = readRequestHead(br, cs.head, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseRequestHead(cs.head, &cs.req); err != nil {
			t.Fatal(err)
		}
		if _, err := parseRoutingHead(cs.req.headers); err != nil {
			t.Fatal(err)
		}
	}
	lrq := &request{m: &machine{}} // a machine of this host
	rewrite := func() {
		cs.newRequestID()
		cs.writeRequestHead(bw, cs.rid, lrq)
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	bsrc := bytes.NewReader(nil)
	bc := &bconn{br: bufio.NewReaderSize(bsrc, 8<<10)}
	relay := func() {
		bsrc.Reset(respBytes)
		bc.br.Reset(bsrc)
		status, keepClient, keepBackend, err := cs.relayResponse(bc, cs.rid, true, m)
		if err != nil || status != 200 || !keepClient || !keepBackend {
			t.Fatalf("relay: %d %v %v %v", status, keepClient, keepBackend, err)
		}
		if err := cs.bw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Routing headers (fly-prefer-region and the like) are rare; a
	// request with one allocates its values (bounded here).
	withRouting := []byte("GET / HTTP/1.1\r\nHost: web.example.test\r\nFly-Prefer-Region: ord\r\nFly-Force-Instance-Id: m1\r\n\r\n")
	routingParse := func() {
		src.Reset(withRouting)
		br.Reset(src)
		var err error
		cs.head, err = readRequestHead(br, cs.head, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseRequestHead(cs.head, &cs.req); err != nil {
			t.Fatal(err)
		}
		rt, err := parseRoutingHead(cs.req.headers)
		if err != nil || rt.preferRegion != "ord" || rt.forceInstance != "m1" {
			t.Fatalf("routing %+v, %v", rt, err)
		}
	}
	if n := testing.AllocsPerRun(1000, routingParse); n > 6 {
		t.Errorf("request parse with two routing headers: %.2f allocations per request, want at most 6", n)
	}
	for _, step := range []struct {
		name string
		f    func()
	}{{"request parse", parse}, {"header rewrite", rewrite}, {"response relay", relay}} {
		step.f()
		if n := testing.AllocsPerRun(1000, step.f); n > 0 {
			t.Errorf("%s: %.2f allocations per request, want 0", step.name, n)
		}
	}
}

// nopConn is a client connection that discards what is written to it.
type nopConn struct{ net.Conn }

func (nopConn) Write(b []byte) (int, error) { return len(b), nil }
