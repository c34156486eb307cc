package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// distances is a Distance from a table.
type distances map[string]time.Duration

func (d distances) Distance(host string) (time.Duration, bool) {
	v, ok := d[host]
	return v, ok
}

// pickID picks for app web and names the choice: a machine id, "wake"
// for one of this host's, "wake@<host>" for another host's.
func pickID(p *Proxy, rt routing) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps["web"]
	if a == nil {
		return ""
	}
	c := p.pickLocked(a, rt)
	switch {
	case c.wake:
		return "wake"
	case c.m == nil:
		return ""
	case c.m.wakeOnly:
		return "wake@" + c.m.remote.id
	}
	return c.m.b.MachineID
}

// The order of the choice: this host, then this region's other hosts,
// then a machine to wake in this region, then the nearest region.
func TestEdgeChoice(t *testing.T) {
	p := New("example.test", "fra", nil)
	p.Waker = &fakeWaker{t: t, p: p}
	p.SetEdge(EdgeOptions{Host: "a"})
	p.SetBackend(Backend{App: "web", MachineID: "local1", Region: "fra", Addr: "127.0.0.1:1"}, true)
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "fra", Routable: true, Soft: 20}}})
	p.SetEdgeHost(EdgeHost{ID: "c", Region: "iad", Addr: "127.0.0.1:3", Machines: []RemoteMachine{
		{App: "web", MachineID: "c1", Region: "iad", Routable: true, Soft: 20}}})
	p.SetEdgeHost(EdgeHost{ID: "d", Region: "syd", Addr: "127.0.0.1:4", Machines: []RemoteMachine{
		{App: "web", MachineID: "d1", Region: "syd", Routable: true, Soft: 20}}})

	if got := pickID(p, routing{}); got != "local1" {
		t.Fatalf("with a machine on this host: %s, want local1", got)
	}
	if got := pickID(p, routing{local: true, forceInstance: "b1"}); got != "" {
		t.Fatalf("a forwarded request (local only) forced to another host's machine: %s, want none", got)
	}
	p.SetBackend(Backend{App: "web", MachineID: "local1"}, false)
	if got := pickID(p, routing{}); got != "b1" {
		t.Fatalf("this host's machine failing its checks: %s, want b1 (same region, other host)", got)
	}
	// b's machine over its soft limit: an under-limit machine elsewhere first.
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "fra", Routable: true, Soft: 2, Inflight: 2}}})
	if got := pickID(p, routing{}); got != "c1" && got != "d1" {
		t.Fatalf("b1 over its soft limit: %s, want another region's machine", got)
	}
	// b's machine stopped with autostart: waking it beats crossing regions.
	p.SetEdgeHost(EdgeHost{ID: "b", Region: "fra", Addr: "127.0.0.1:2", Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "fra", Wakeable: true}}})
	for range 20 {
		if got := pickID(p, routing{}); got != "wake@b" {
			t.Fatalf("b1 stopped with autostart: %s, want wake@b", got)
		}
	}
	// This host has a machine to wake: it goes before b's.
	p.SetEdgeHost(EdgeHost{ID: "a", Region: "fra", Machines: []RemoteMachine{{App: "web", MachineID: "local2", Region: "fra", Wakeable: true}}})
	if got := pickID(p, routing{}); got != "wake" {
		t.Fatalf("this host has a machine to wake: %s, want wake", got)
	}
	p.SetEdgeHost(EdgeHost{ID: "a", Region: "fra"})
	p.RemoveEdgeHost("b")
	// Without distances every other region is alike; with them, nearest first.
	seen := map[string]bool{}
	for range 50 {
		seen[pickID(p, routing{})] = true
	}
	if !seen["c1"] || !seen["d1"] || len(seen) != 2 {
		t.Fatalf("no distances: picked %v, want c1 and d1 alike", seen)
	}
	p.SetEdge(EdgeOptions{Host: "a", Distance: distances{"c": 80 * time.Millisecond, "d": 40 * time.Millisecond}})
	for range 20 {
		if got := pickID(p, routing{}); got != "d1" {
			t.Fatalf("d 40ms away, c 80ms: %s, want d1", got)
		}
	}
	if got := pickID(p, routing{forceRegion: "iad"}); got != "c1" {
		t.Fatalf("fly-force-region iad: %s, want c1", got)
	}
	if got := pickID(p, routing{preferRegion: "iad"}); got != "c1" {
		t.Fatalf("fly-prefer-region iad: %s, want c1", got)
	}
	// A host whose connection failed is skipped for DownFor.
	p.mu.Lock()
	p.rhosts["d"].downUntil = time.Now().Add(time.Minute)
	p.mu.Unlock()
	if got := pickID(p, routing{}); got != "c1" {
		t.Fatalf("d down: %s, want c1", got)
	}
	p.RemoveEdgeHost("c")
	p.RemoveEdgeHost("d")
	if got := pickID(p, routing{}); got != "" {
		t.Fatalf("every other host gone, local machine failing: %s, want none", got)
	}
}

// edgePair is two proxies: a (the edge, region fra) and b (the owner,
// region iad) with b's edge listener on TLS; b's machines are told to a
// as b's record.
type edgePair struct {
	a, b   *Proxy
	aSrv   *httptest.Server
	bEdge  *httptest.Server
	record func(ms ...RemoteMachine)
}

func newEdgePair(t *testing.T) *edgePair {
	a := New("example.test", "fra", nil)
	a.Port = "8080"
	b := New("example.test", "iad", nil)
	bEdge := httptest.NewUnstartedServer(http.HandlerFunc(b.ServeEdge))
	bEdge.StartTLS()
	t.Cleanup(bEdge.Close)
	a.SetEdge(EdgeOptions{Host: "a", Transport: bEdge.Client().Transport})
	b.SetEdge(EdgeOptions{Host: "b"})
	e := &edgePair{a: a, b: b, aSrv: front(t, a), bEdge: bEdge}
	e.record = func(ms ...RemoteMachine) {
		a.SetEdgeHost(EdgeHost{ID: "b", Region: "iad", Addr: strings.TrimPrefix(bEdge.URL, "https://"), Machines: ms})
	}
	return e
}

// A request entering a for a machine on b is forwarded to b's edge
// listener: the machine sees a's region and port, none of the edge's
// headers, and nothing a client sent under their names.
func TestEdgeForward(t *testing.T) {
	e := newEdgePair(t)
	var got atomic.Value
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		r.Header.Write(&sb)
		got.Store(sb.String())
		io.WriteString(w, "b1")
	})
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})

	req, _ := http.NewRequest("GET", e.aSrv.URL+"/", nil)
	req.Host = "web.example.test"
	req.Header.Set("Hangar-Edge-Force", "nope")
	req.Header.Set("Hangar-Edge-App", "other")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "b1" {
		t.Fatalf("through a: %d %q, want 200 b1", resp.StatusCode, body)
	}
	h, _ := got.Load().(string)
	for _, want := range []string{"Fly-Region: fra", "Fly-Forwarded-Port: 8080", "Fly-Request-Id: "} {
		if !strings.Contains(h, want) {
			t.Errorf("the machine's headers lack %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "Hangar-Edge") {
		t.Errorf("an edge header reached the machine:\n%s", h)
	}
	if rid := resp.Header.Get("Fly-Request-Id"); rid == "" || !strings.Contains(h, "Fly-Request-Id: "+rid) {
		t.Errorf("Fly-Request-Id %q answered is not the one the machine saw:\n%s", rid, h)
	}

	// b has nothing routable: the forwarded request is not sent on (b
	// knows a's machine, but a forwarded request stays on its host).
	am := backend(t, "a1", nil)
	am.Region = "fra"
	e.b.SetEdge(EdgeOptions{Host: "b", Transport: e.bEdge.Client().Transport})
	e.b.SetEdgeHost(EdgeHost{ID: "a", Region: "fra", Addr: "127.0.0.1:1", Machines: []RemoteMachine{{App: "web", MachineID: "a1", Region: "fra", Routable: true}}})
	e.b.SetBackend(Backend{App: "web", MachineID: "b1"}, false)
	r2, _ := http.NewRequest("GET", e.bEdge.URL+"/", nil)
	r2.Host = "web.example.test"
	r2.Header.Set("Hangar-Edge-App", "web")
	r2.Header.Set("Hangar-Edge-Prefer", "b1")
	resp, err = e.bEdge.Client().Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("forwarded request with no routable machine on b: %d, want 503 (never forwarded again)", resp.StatusCode)
	}
}

// An idempotent request whose connection to another host breaks is sent
// once more, to another machine; a POST is not.
func TestEdgeFailover(t *testing.T) {
	e := newEdgePair(t)
	// Host x accepts connections and drops them at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	// x is nearer (in fra): it is tried first.
	e.a.SetEdgeHost(EdgeHost{ID: "x", Region: "fra", Addr: ln.Addr().String(), Machines: []RemoteMachine{
		{App: "web", MachineID: "x1", Region: "fra", Routable: true, Soft: 20}}})
	resp, body := get(t, e.aSrv, "web.example.test", "/")
	if resp.StatusCode != 200 || body != "b1" {
		t.Fatalf("GET with x's connection dropped: %d %q, want 200 b1 (retried)", resp.StatusCode, body)
	}
	// x is now skipped; once it is not, a POST with a body is not retried.
	e.a.mu.Lock()
	e.a.rhosts["x"].downUntil = time.Time{}
	e.a.mu.Unlock()
	req, _ := http.NewRequest("POST", e.aSrv.URL+"/", strings.NewReader("data"))
	req.Host = "web.example.test"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("POST with x's connection dropped: %d, want 502 (not retried)", resp.StatusCode)
	}
}

// A protocol upgrade (WebSocket) to another host's machine goes through
// both proxies and then carries bytes both ways.
func TestEdgeUpgrade(t *testing.T) {
	e := newEdgePair(t)
	e.a.SetEdge(EdgeOptions{Host: "a", Transport: e.bEdge.Client().Transport, UpgradeTransport: e.bEdge.Client().Transport})
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	upgradeEchoes(t, e.aSrv.URL)
}

// A raw TCP connection for another host's machine is carried to that
// host as an upgrade and joined to the machine's port there.
func TestEdgeTCP(t *testing.T) {
	e := newEdgePair(t)
	tr := e.bEdge.Client().Transport.(*http.Transport)
	e.a.SetEdge(EdgeOptions{Host: "a", Transport: tr, Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		cfg := tr.TLSClientConfig.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		return (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	}})
	// b's machine: an echo server on a port of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, release, err := e.a.PickConn(ctx, "web", port)
	if err != nil {
		t.Fatalf("PickConn through a for b's machine: %v", err)
	}
	defer release()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "ping\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo through a and b: %q %v", line, err)
	}
	if n, _ := e.b.Load("web", "b1"); n != 1 {
		t.Fatalf("b counts %d connections on its machine, want 1 (the owner holds the limits)", n)
	}
	// Half-close passes: the echo ends, and so does the stream.
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(br); err != nil || len(b) != 0 {
		t.Fatalf("after CloseWrite: %q %v, want EOF", b, err)
	}
}

// A machine on another host that answers fly-replay: its host passes the
// answer back, and the edge follows it (here to a machine of its own).
func TestEdgeReplayFromRemote(t *testing.T) {
	e := newEdgePair(t)
	var bHits atomic.Int32
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		bHits.Add(1)
		w.Header().Set("Fly-Replay", "instance=a1")
		io.WriteString(w, "replay me")
	})
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	am := backend(t, "a1", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a1 src="+r.Header.Get("Fly-Replay-Src"))
	})
	am.Region = "fra"
	e.a.SetBackend(am, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	req, _ := http.NewRequest("GET", e.aSrv.URL+"/", nil)
	req.Host = "web.example.test"
	req.Header.Set("Fly-Prefer-Region", "iad")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a1 src=") || !strings.Contains(string(body), "instance=b1") {
		t.Fatalf("fly-replay from b's machine: %d %q, want a1's answer with the replay's source", resp.StatusCode, body)
	}
	if bHits.Load() != 1 {
		t.Fatalf("b's machine got %d requests, want 1", bHits.Load())
	}
}

// Records arriving all the time (load changes) while requests flow
// through the edge: every request is served (and -race sees no race).
func TestEdgeRecordChurn(t *testing.T) {
	e := newEdgePair(t)
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20, Inflight: i % 5, ConfGen: i % 3})
			time.Sleep(100 * time.Microsecond)
		}
	}()
	for i := 0; i < 200; i++ {
		if resp, body := get(t, e.aSrv, "web.example.test", "/"); resp.StatusCode != 200 || body != "b1" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	close(stop)
	<-done
}

// upgradeEchoes upgrades a connection to web's machine through the edge
// at url (WebSocket handshake) and checks the machine echoes a line.
func upgradeEchoes(t *testing.T, url string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: web.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade through a to b's machine: %s %q, want 101", resp.Status, b)
	}
	io.WriteString(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello\n" {
		t.Fatalf("after the upgrade: %q %v, want the machine's echo", line, err)
	}
}
