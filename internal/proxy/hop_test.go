package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hopPair is two proxies: a (the edge, fra) and b (the owner, iad), with
// b's plain hop listener served by its fast path (and its edge listener on
// TLS, for what takes the net/http path); b's machines are told to a as
// b's record, with both addresses.
type hopPair struct {
	*edgePair
	hop     string       // b's hop listener
	refused atomic.Int32 // connections b's hop listener refused
	allowed atomic.Pointer[netip.Addr]
}

func newHopPair(t *testing.T) *hopPair {
	e := &hopPair{edgePair: newEdgePair(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	e.allowed.Store(&lo)
	hl := HopListener(ln, func(a netip.Addr) bool { return a == *e.allowed.Load() }, func(netip.Addr) { e.refused.Add(1) })
	go func() {
		_ = e.b.Serve(hl, &http.Server{Handler: http.HandlerFunc(e.b.ServeEdge), ReadHeaderTimeout: 2 * time.Second})
	}()
	t.Cleanup(func() { ln.Close() })
	e.hop = ln.Addr().String()
	e.record = func(ms ...RemoteMachine) {
		e.a.SetEdgeHost(EdgeHost{ID: "b", Region: "iad", Addr: strings.TrimPrefix(e.bEdge.URL, "https://"), Hop: e.hop, Machines: ms})
	}
	return e
}

// A request entering a's fast path for a machine on b goes on the plain
// hop to b's fast path: the machine sees a's forwarded headers (region,
// port, client address, request id), none of the edge's, and nothing a
// client sent under their names; TLS is not used.
func TestHopForward(t *testing.T) {
	e := newHopPair(t)
	var got atomic.Value
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		r.Header.Write(&sb)
		got.Store(sb.String())
		io.WriteString(w, "b1")
	})
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	tlsHits := e.countTLS()
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	if e.a.slowHost([]byte("web.example.test")) {
		t.Fatal("an app on a host with a hop listener is handed to the net/http path; want the fast path")
	}

	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", e.aSrv.URL+"/x?y=1", nil)
		req.Host = "web.example.test"
		req.Header.Set("Hangar-Edge-Force", "nope")
		req.Header.Set("Hangar-Edge-App", "other")
		req.Header.Set("Fly-Region", "forged")
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
		for _, want := range []string{"Fly-Region: fra\r\n", "Fly-Forwarded-Port: 8080", "Fly-Client-Ip: 127.0.0.1", "X-Forwarded-For: 127.0.0.1\r\n"} {
			if !strings.Contains(h, want) {
				t.Errorf("the machine's headers lack %q:\n%s", want, h)
			}
		}
		if strings.Contains(h, "Hangar-Edge") || strings.Contains(h, "forged") {
			t.Errorf("an edge header or a client's forged header reached the machine:\n%s", h)
		}
		if rid := resp.Header.Get("Fly-Request-Id"); rid == "" || !strings.Contains(h, "Fly-Request-Id: "+rid) {
			t.Errorf("Fly-Request-Id %q answered is not the one the machine saw:\n%s", rid, h)
		}
	}
	if n := tlsHits.Load(); n != 0 {
		t.Fatalf("b's TLS edge listener served %d requests; want all on the plain hop", n)
	}
	e.a.mu.Lock()
	pooled := len(e.a.rhosts["b"].pool)
	e.a.mu.Unlock()
	if pooled != 1 {
		t.Fatalf("a keeps %d idle connections to b's hop listener after 3 sequential requests, want 1 (reused)", pooled)
	}
	// Counted once for the app, on the edge; the owner counts them for
	// its machine only.
	if st := e.a.Stats(); len(st) != 1 || st[0].DataIn == 0 || st[0].DataOut == 0 || st[0].Requests[200] != 3 {
		t.Fatalf("a's counters: %+v, want the 3 requests and their bytes counted on the edge", st)
	}
	st := e.b.Stats()
	if len(st) != 1 || len(st[0].Requests) != 0 || st[0].DataIn != 0 || st[0].TCPConnects != 0 || len(st[0].Machines) != 1 || st[0].Machines[0].Requests[200] != 3 {
		t.Fatalf("b's counters: %+v, want none for the app, the 3 requests for its machine", st)
	}
}

// The hop listener serves only the addresses allow accepts (other hosts'
// mesh addresses): another source gets its connection closed unread,
// whatever it sends.
func TestHopRefusesOtherSources(t *testing.T) {
	e := newHopPair(t)
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	other := netip.MustParseAddr("192.0.2.7")
	e.allowed.Store(&other)
	c, err := net.Dial("tcp", e.hop)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\nHangar-Edge-App: web\r\nHangar-Edge-Force: b1\r\n\r\n")
	if b, err := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("a connection from a source not allowed got %q (%v), want it closed unanswered", b, err)
	}
	poll(t, "the refusal counted", func() bool { return e.refused.Load() == 1 })
}

// A client's Hangar-Edge-* headers mean nothing on a public listener's
// fast path: they are not passed on and do not route (here a forced
// machine that does not exist would be a 503).
func TestHopHeadersFromClientsIgnored(t *testing.T) {
	p := New("example.test", "fra", nil)
	var got atomic.Value
	p.SetBackend(backend(t, "m1", func(w http.ResponseWriter, r *http.Request) {
		var sb strings.Builder
		r.Header.Write(&sb)
		got.Store(sb.String())
		io.WriteString(w, "m1")
	}), true)
	s := front(t, p)
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\nHangar-Edge-App: other\r\nHangar-Edge-Force: nope\r\nHangar-Edge-Prefer: nope\r\nFly-Request-Id: forged\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "m1" {
		t.Fatalf("with a client's hop headers: %d %q, want 200 m1 (ignored)", resp.StatusCode, body)
	}
	h, _ := got.Load().(string)
	if strings.Contains(h, "Hangar-Edge") || strings.Contains(h, "forged") {
		t.Fatalf("a client's hop headers reached the machine:\n%s", h)
	}
}

// b's machine has hard_limit 2: requests forwarded on the plain hop by a,
// and others entering b directly, never have more than 2 at the machine
// at once (b, the owner, holds the limit), and all are served.
func TestHopHardLimitOnOwner(t *testing.T) {
	e := newHopPair(t)
	var cur, peak atomic.Int32
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		cur.Add(-1)
		io.WriteString(w, "b1")
	})
	bm.Region = "iad"
	bm.Service = svcWith(1, 2)
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 1, Hard: 2})
	bSrv := front(t, e.b)
	var wg sync.WaitGroup
	errs := make(chan string, 12)
	for i := 0; i < 12; i++ {
		srv := e.aSrv
		if i%3 == 0 {
			srv = bSrv
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Host = "web.example.test"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("request: %s", e)
	}
	if p := peak.Load(); p > 2 || p == 0 {
		t.Fatalf("at most %d requests at the machine at once, want 1..2 (hard_limit 2 held by its host)", p)
	}
}

// A host whose hop listener drops connections: a GET is sent once more,
// to another host's machine; a POST with a body is not (502), and the
// host is skipped for DownFor meanwhile.
func TestHopRetryOnce(t *testing.T) {
	e := newHopPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var drops atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Read the request, then drop the connection unanswered.
			go func() {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, _ = http.ReadRequest(bufio.NewReader(c))
				drops.Add(1)
				c.Close()
			}()
		}
	}()
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	e.b.SetBackend(bm, true)
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20})
	// x is in fra, nearer: it is tried first.
	e.a.SetEdgeHost(EdgeHost{ID: "x", Region: "fra", Addr: "127.0.0.1:1", Hop: ln.Addr().String(), Machines: []RemoteMachine{
		{App: "web", MachineID: "x1", Region: "fra", Routable: true, Soft: 20}}})
	resp, body := get(t, e.aSrv, "web.example.test", "/")
	if resp.StatusCode != 200 || body != "b1" {
		t.Fatalf("GET with x's connection dropped: %d %q, want 200 b1 (retried)", resp.StatusCode, body)
	}
	if drops.Load() != 1 {
		t.Fatalf("x got %d requests, want 1", drops.Load())
	}
	// x is skipped now.
	if resp, body := get(t, e.aSrv, "web.example.test", "/"); resp.StatusCode != 200 || body != "b1" || drops.Load() != 1 {
		t.Fatalf("GET with x down: %d %q, x got %d; want b1, x skipped", resp.StatusCode, body, drops.Load())
	}
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
	// Both x and b gone: a GET is retried once only, then 502.
	e.a.mu.Lock()
	e.a.rhosts["x"].downUntil = time.Time{}
	e.a.mu.Unlock()
	e.a.SetEdgeHost(EdgeHost{ID: "b", Region: "iad", Addr: "127.0.0.1:1", Hop: ln.Addr().String(), Machines: []RemoteMachine{
		{App: "web", MachineID: "b1", Region: "iad", Routable: true, Soft: 20}}})
	before := drops.Load()
	resp, _ = get(t, e.aSrv, "web.example.test", "/")
	if resp.StatusCode != http.StatusBadGateway || drops.Load()-before != 2 {
		t.Fatalf("GET with every host dropping: %d after %d attempts, want 502 after 2", resp.StatusCode, drops.Load()-before)
	}
}

// fly-replay from a machine on b, on the plain hop: b passes the answer
// back, a follows it (to a machine of its own).
func TestHopReplayFromRemote(t *testing.T) {
	e := newHopPair(t)
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
	tlsHits := e.countTLS()
	// The first fly-replay of an app moves its requests to a's net/http
	// path (which records bodies), as for a machine of a's own: that
	// request is sent again there (b's machine sees it twice); the next
	// ones once.
	for i, want := range []int32{2, 1} {
		bHits.Store(0)
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
		if bHits.Load() != want {
			t.Fatalf("request %d: b's machine got %d requests, want %d", i, bHits.Load(), want)
		}
	}
	if n := tlsHits.Load(); n != 0 {
		t.Fatalf("b's TLS edge listener served %d requests; want the net/http path on the plain hop too", n)
	}
}

// countTLS counts the requests b's TLS edge listener serves.
func (e *hopPair) countTLS() *atomic.Int32 {
	var n atomic.Int32
	e.bEdge.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		e.b.ServeEdge(w, r)
	})
	return &n
}

// A protocol upgrade (WebSocket) to another host's machine takes the
// edge's net/http path, on the plain hop (not TLS) to the owner's hop
// listener, which hands it to ServeEdge; bytes then flow both ways.
func TestHopUpgrade(t *testing.T) {
	e := newHopPair(t)
	bm := backend(t, "b1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get("Fly-Region") != "fra" || r.Header.Get("Hangar-Edge-App") != "" {
			http.Error(w, "want an upgrade with the edge's headers", 400)
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
	tlsHits := e.countTLS()
	upgradeEchoes(t, e.aSrv.URL)
	if n := tlsHits.Load(); n != 0 {
		t.Fatalf("b's TLS edge listener served %d requests; want the upgrade on the plain hop", n)
	}
}

// A stopped machine on b with autostart (b's record: one to wake): the
// request forwarded on the hop makes b wake it.
func TestHopWakeOnOwner(t *testing.T) {
	e := newHopPair(t)
	bm := backend(t, "b1", nil)
	bm.Region = "iad"
	w := &hopWaker{p: e.b, b: bm}
	e.b.Waker = w
	e.record(RemoteMachine{App: "web", MachineID: "b1", Region: "iad", Wakeable: true})
	resp, body := get(t, e.aSrv, "web.example.test", "/")
	if resp.StatusCode != 200 || body != "b1" || w.n.Load() != 1 {
		t.Fatalf("through a to b's stopped machine: %d %q after %d wakes, want 200 b1 after 1", resp.StatusCode, body, w.n.Load())
	}
}

// hopWaker starts its machine (makes it routable) when asked.
type hopWaker struct {
	p *Proxy
	b Backend
	n atomic.Int32
}

func (w *hopWaker) Wake(ctx context.Context, app, region string) (string, error) {
	w.n.Add(1)
	w.p.SetBackend(w.b, true)
	return w.b.MachineID, nil
}

// Whatever request head a client sends, as the edge forwards it on the
// plain hop it parses again to the same request with the edge's pin only
// (a client's Hangar-Edge-* are gone), the owner reads that pin, and the
// owner's head for its machine has the same framing and no hop header.
func FuzzHopRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: web.example.test\r\nHangar-Edge-App: other\r\nHangar-Edge-Force: x\r\nFly-Request-Id: forged\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a.example.test\r\nContent-Length: 5\r\nConnection: close, Hangar-Edge-Prefer\r\nHangar-Edge-Prefer: 1\r\n\r\nhello",
		"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.0 x\r\n\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	rh := &remoteHost{id: "b", hop: "127.0.0.1:1"}
	f.Fuzz(func(t *testing.T, in []byte, force bool) {
		br := bufio.NewReaderSize(strings.NewReader(string(in)), 4096)
		head, err := readHead(br, nil, 8<<10)
		if err != nil {
			return
		}
		var h reqHead
		if err := parseRequestHead(head, &h); err != nil || !h.fastPathOK() {
			return
		}
		m := &machine{remote: rh, b: Backend{App: "web", MachineID: "b1"}}
		rt := routing{}
		if force {
			rt.forceInstance = "b1"
		}
		edge := &connState{p: New("example.test", "fra", nil), req: h, clientIP: "192.0.2.1"}
		var out strings.Builder
		w := bufio.NewWriter(&out)
		edge.writeRequestHead(w, "rid-edge", &request{m: m, prefs: rt})
		w.Flush()
		owner := &connState{p: New("example.test", "iad", nil), cfg: serveConfig{hop: true}}
		if err := parseRequestHead([]byte(out.String()), &owner.req); err != nil {
			t.Fatalf("the hop head does not parse: %v\n%q", err, out.String())
		}
		o := &owner.req
		if !bytes.Equal(h.method, o.method) || !bytes.Equal(h.target, o.target) || !bytes.Equal(h.host, o.host) || h.chunked != o.chunked || h.contentLength != o.contentLength {
			t.Fatalf("the hop request differs:\n%q\n%q", head, out.String())
		}
		name, got, rid := owner.hopRequest()
		want := routing{local: true, preferInstance: "b1"}
		if force {
			want = routing{local: true, forceInstance: "b1"}
		}
		if name != "web" || got != want || rid != "rid-edge" {
			t.Fatalf("the owner reads app %q, routing %+v, request id %q; want web, %+v, rid-edge\n%q", name, got, rid, want, out.String())
		}
		var mo strings.Builder
		w = bufio.NewWriter(&mo)
		owner.writeRequestHead(w, rid, &request{m: &machine{}})
		w.Flush()
		var h3 reqHead
		if err := parseRequestHead([]byte(mo.String()), &h3); err != nil {
			t.Fatalf("the owner's head for its machine does not parse: %v\n%q", err, mo.String())
		}
		hopHeader := false
		for _, x := range h3.headers {
			hopHeader = hopHeader || edgeOnly.has(x.name)
		}
		if h3.chunked != h.chunked || h3.contentLength != h.contentLength || hopHeader || !strings.Contains(mo.String(), "Fly-Region: fra\r\n") {
			t.Fatalf("the owner's head for its machine:\n%q\nwant the framing of\n%q, the edge's Fly-Region, no hop header", mo.String(), head)
		}
	})
}
