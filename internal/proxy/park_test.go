//go:build linux

package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// getOn sends a GET on c and checks the app's answer.
func getOn(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "m1" {
		t.Fatalf("answer %d %q", resp.StatusCode, b)
	}
}

// Idle keep-alive connections are parked after bufferHold: their
// goroutines end, and they still serve their next requests, and are
// parked again after those.
func TestIdleConnectionsParked(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	addr := serveLong(t, p)
	const n = 50
	var conns []net.Conn
	var brs []*bufio.Reader
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	base := runtime.NumGoroutine()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns, brs = append(conns, c), append(brs, bufio.NewReader(c))
		getOn(t, c, brs[i])
	}
	busy := runtime.NumGoroutine()
	poll(t, "every idle connection parked", func() bool { return p.parkedConns() == n })
	if !allDetached(p) {
		t.Error("a parked connection kept its net.Conn")
	}
	idle := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d connections serving, %d with them parked", base, busy, n, idle)
	if busy-idle < n-1 { // the poller is one goroutine more
		t.Errorf("parking %d connections ended %d goroutines; want one each", n, busy-idle)
	}
	for i, c := range conns {
		getOn(t, c, brs[i]) // wakes it
	}
	poll(t, "parked again after their second request", func() bool { return p.parkedConns() == n })
	// Pipelined bytes that arrive while parked are served whole.
	_ = conns[0].SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conns[0], "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\nGET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(brs[0], nil)
		if err != nil {
			t.Fatalf("pipelined request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// A client that closes a parked connection frees it.
	for _, c := range conns {
		c.Close()
	}
	poll(t, "closed connections gone", func() bool { return p.ConnStats().Open == 0 && p.parkedConns() == 0 })
}

// A parked connection is closed when its idle timeout ends, and not
// before it.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const idle = bufferHold + parkMin + time.Second
	go func() { _ = p.Serve(ln, &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: idle}) }()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	getOn(t, c, bufio.NewReader(c))
	poll(t, "the connection parked", func() bool { return p.parkedConns() == 1 })
	_ = c.SetReadDeadline(time.Now().Add(idle + 10*time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read on an idle connection: %d bytes, %v; want it closed", n, err)
	}
	if waited := time.Since(start); waited < idle {
		t.Errorf("closed after %v idle; want the idle timeout (%v) first", waited, idle)
	}
	poll(t, "the connection gone", func() bool { return p.ConnStats().Open == 0 && p.parkedConns() == 0 })
}

// Shutdown ends parked connections and returns.
func TestShutdownEndsParkedConnections(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Serve(ln, &http.Server{IdleTimeout: time.Minute}) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	getOn(t, c, br)
	poll(t, "the connection parked", func() bool { return p.parkedConns() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after shutdown the client read %q, %v; want the connection closed", b, err)
	}
	if p.parkedConns() != 0 || p.ConnStats().Open != 0 {
		t.Errorf("after shutdown: %d parked, %d open", p.parkedConns(), p.ConnStats().Open)
	}
}

// releaseMemory frees memory after the open or the busy connections fell
// by freeAfterDrop from their peak, and only then; the open peak counts
// connections accepted between the janitor's ticks.
func TestReleaseMemoryAfterDrop(t *testing.T) {
	p := New("example.test", "ord", nil)
	gcs := func() uint32 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.NumForcedGC
	}
	before := gcs()
	p.releaseMemory(50, 50)
	p.releaseMemory(freeAfterDrop+100, freeAfterDrop+100)
	p.releaseMemory(freeAfterDrop+100, 101) // busy fell by freeAfterDrop - 1
	p.releaseMemory(101, 101)               // open too
	if got := gcs() - before; got != 0 {
		t.Fatalf("%d forced collections without a large drop", got)
	}
	p.releaseMemory(101, 100) // busy fell by freeAfterDrop: parked
	if got := gcs() - before; got == 0 {
		t.Fatal("no collection after the busy connections fell by freeAfterDrop")
	}
	before = gcs()
	p.releaseMemory(101, 0)
	if got := gcs() - before; got != 0 {
		t.Fatalf("%d forced collections right after a release, without a new drop", got)
	}
	// Connections accepted between ticks raise the open peak; their
	// close is a drop although no tick saw them open.
	p.srvMu.Lock()
	p.connPeak.open = freeAfterDrop + 200
	p.srvMu.Unlock()
	p.releaseMemory(200, 0)
	if got := gcs() - before; got == 0 {
		t.Fatal("no collection after the open connections fell by freeAfterDrop between ticks")
	}
	// Connections accepted busy and parked between two ticks: the busy
	// peak was raised as they came, and their parking is a drop.
	before = gcs()
	p.srvMu.Lock()
	p.open = freeAfterDrop + 200
	p.raiseBusyPeakLocked()
	p.srvMu.Unlock()
	p.parkedN.Store(freeAfterDrop + 200)
	p.releaseMemory(freeAfterDrop+200, 0)
	if got := gcs() - before; got == 0 {
		t.Fatal("no collection after connections accepted between ticks were parked")
	}
	p.parkedN.Store(0)
	p.srvMu.Lock()
	p.open = 0
	p.srvMu.Unlock()
}

// allDetached reports whether every parked connection left Go's
// netpoller: its net.Conn closed, its socket held by the parker's
// duplicate descriptor.
func allDetached(p *Proxy) bool {
	pk := &p.parker
	pk.mu.Lock()
	defer pk.mu.Unlock()
	for _, cs := range pk.conns {
		conn := cs.fc.c
		if cs.fc.wire != nil {
			conn = cs.fc.wire.Conn
		}
		if !cs.detached || conn.SetReadDeadline(time.Time{}) == nil {
			return false
		}
	}
	return true
}

// Idle HTTPS connections are parked like plain ones and serve their next
// request when it comes.
func TestServeTLSIdleConnectionsParked(t *testing.T) {
	p := New("example.test", "ord", nil)
	p.SetBackend(backend(t, "m1", nil), true)
	addr, _ := serveTLS(t, p)
	const n = 20
	var conns []*tls.Conn
	var brs []*bufio.Reader
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "web.example.test", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		conns, brs = append(conns, c), append(brs, bufio.NewReader(c))
		getOn(t, c, brs[i])
	}
	poll(t, "every idle HTTPS connection parked", func() bool { return p.parkedConns() == n })
	if !allDetached(p) {
		t.Error("a parked HTTPS connection kept its net.Conn")
	}
	for i, c := range conns {
		getOn(t, c, brs[i]) // wakes it
	}
	poll(t, "parked again after their second request", func() bool { return p.parkedConns() == n })
}
