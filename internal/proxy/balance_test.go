package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// poll waits for cond with a deadline.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 10s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func svcWith(soft, hard int) *types.MachineService {
	return &types.MachineService{Protocol: "tcp", InternalPort: 8080, Concurrency: &types.MachineServiceConcurrency{Type: "requests", SoftLimit: soft, HardLimit: hard}}
}

// gate is a backend whose /slow requests block until released.
type gate struct {
	entered chan string
	release chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan string, 16), release: make(chan struct{})} }

func (g *gate) backend(t *testing.T, name string, svc *types.MachineService) Backend {
	b := backend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			g.entered <- name
			<-g.release
		}
		io.WriteString(w, name)
	})
	b.Service = svc
	return b
}

func goGet(t *testing.T, s string, host, path string, out chan<- string) {
	go func() {
		req, _ := http.NewRequest("GET", s+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
}

// Two machines with hard_limit 1: two slow requests land one on each
// (least-loaded); a third waits in the queue and is served when a slot
// frees; with a short queue timeout a waiting request gets 503 saying why.
func TestHardLimitQueue(t *testing.T) {
	p := New("example.test", "local", nil)
	g := newGate()
	p.SetBackend(g.backend(t, "m1", svcWith(1, 1)), true)
	p.SetBackend(g.backend(t, "m2", svcWith(1, 1)), true)
	s := front(t, p)
	out := make(chan string, 8)
	goGet(t, s.URL, "web.example.test", "/slow", out)
	goGet(t, s.URL, "web.example.test", "/slow", out)
	a, b := <-g.entered, <-g.entered
	if a == b {
		t.Fatalf("both slow requests went to %s; least-loaded should spread them", a)
	}
	goGet(t, s.URL, "web.example.test", "/", out)
	poll(t, "third request queued", func() bool { st := p.Stats(); return len(st) == 1 && st[0].Waiting == 1 })
	select {
	case r := <-out:
		t.Fatalf("a request finished while both machines were at hard_limit: %q", r)
	default:
	}
	g.release <- struct{}{} // one slow request finishes: the queued one runs
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		got[(<-out)[:3]] = true
	}
	if !got["200"] || len(got) != 1 {
		t.Fatalf("answers %v, want 200s", got)
	}
	// Queue timeout: with the remaining slot taken again, a request waits
	// QueueTimeout and then gets 503.
	p.mu.Lock()
	p.QueueTimeout = 100 * time.Millisecond
	p.mu.Unlock()
	goGet(t, s.URL, "web.example.test", "/slow", out)
	<-g.entered
	resp, body := get(t, s, "web.example.test", "/")
	if resp.StatusCode != 503 || !strings.Contains(body, "hard_limit") {
		t.Fatalf("over hard_limit: %d %q", resp.StatusCode, body)
	}
	close(g.release)
	for i := 0; i < 2; i++ {
		if r := <-out; !strings.HasPrefix(r, "200") {
			t.Fatalf("slow request: %q", r)
		}
	}
	// Four answered 200 (two slow, the queued one, the last slow one) and
	// one 503; the counters are updated just after the response is sent.
	poll(t, "stats", func() bool {
		st := p.Stats()[0]
		return st.Requests[200] == 4 && st.Requests[503] == 1 && st.Latency.Count == 5 && len(st.Requests) == 2
	})
}

// The least-loaded machine under its soft limit and in the nearest region
// wins; routing headers steer and force.
func TestRegionsAndRoutingHeaders(t *testing.T) {
	p := New("example.test", "local", nil)
	near := backend(t, "near", nil)
	far := backend(t, "far", nil)
	far.Region = "far"
	far2 := backend(t, "far2", nil)
	far2.Region = "far"
	p.SetBackend(near, true)
	p.SetBackend(far, true)
	p.SetBackend(far2, true)
	s := front(t, p)
	send := func(h map[string]string) (int, string) {
		req, _ := http.NewRequest("GET", s.URL+"/", nil)
		req.Host = "web.example.test"
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for i := 0; i < 10; i++ {
		if _, b := send(nil); b != "near" {
			t.Fatalf("idle machines: request went to %q, want the one in this region", b)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 40; i++ {
		_, b := send(map[string]string{"Fly-Prefer-Region": "far"})
		seen[b] = true
	}
	if !seen["far"] || !seen["far2"] || seen["near"] {
		t.Fatalf("fly-prefer-region far went to %v; want both far machines (ties at random) only", seen)
	}
	if _, b := send(map[string]string{"Fly-Force-Instance-Id": "far2"}); b != "far2" {
		t.Fatalf("fly-force-instance-id: %q", b)
	}
	if _, b := send(map[string]string{"Fly-Prefer-Instance-Id": "far"}); b != "far" {
		t.Fatalf("fly-prefer-instance-id: %q", b)
	}
	p.SetBackend(Backend{App: "web", MachineID: "far"}, false)
	p.SetBackend(Backend{App: "web", MachineID: "far2"}, false)
	if c, b := send(map[string]string{"Fly-Force-Region": "far"}); c != 503 {
		t.Fatalf("fly-force-region with no routable machine there: %d %q", c, b)
	}
	if c, b := send(map[string]string{"Fly-Prefer-Region": "far"}); c != 200 || b != "near" {
		t.Fatalf("fly-prefer-region falls back: %d %q", c, b)
	}
	if c, b := send(map[string]string{"Fly-Force-Instance-Id": "nope"}); c != 503 || !strings.Contains(b, "nope") {
		t.Fatalf("unknown forced instance: %d %q", c, b)
	}
	if c, b := send(map[string]string{"Fly-Force-Region": "bad region!"}); c != 400 {
		t.Fatalf("malformed routing header: %d %q", c, b)
	}
}

// A machine over its soft_limit is used only when every machine is.
func TestSoftLimitDeprioritises(t *testing.T) {
	p := New("example.test", "local", nil)
	p.SetBackend(Backend{App: "a", MachineID: "x", Region: "local", Service: svcWith(1, 0)}, true)
	p.SetBackend(Backend{App: "a", MachineID: "y", Region: "other", Service: svcWith(1, 0)}, true)
	ctx := context.Background()
	_, m1, _, _ := p.acquire(ctx, "a", routing{})
	if m1.b.MachineID != "x" {
		t.Fatalf("first request went to %s, want the local machine", m1.b.MachineID)
	}
	_, m2, _, _ := p.acquire(ctx, "a", routing{})
	if m2.b.MachineID != "y" {
		t.Fatalf("with x at its soft_limit the request went to %s, want y (under its soft limit, though farther)", m2.b.MachineID)
	}
	_, m3, _, _ := p.acquire(ctx, "a", routing{})
	if m3.b.MachineID != "x" {
		t.Fatalf("all over soft_limit: %s, want the local one", m3.b.MachineID)
	}
}

// fakeWaker starts a real backend when asked, after a delay.
type fakeWaker struct {
	t     *testing.T
	p     *Proxy
	calls atomic.Int32
	err   error
	delay time.Duration
	mu    sync.Mutex
	woke  []string
}

func (w *fakeWaker) Wake(ctx context.Context, app, region string) (string, error) {
	n := w.calls.Add(1)
	if w.err != nil {
		return "", w.err
	}
	time.Sleep(w.delay)
	id := fmt.Sprintf("woken%d", n)
	b := backend(w.t, id, nil)
	b.App = app
	w.p.SetBackend(b, true)
	w.mu.Lock()
	w.woke = append(w.woke, id)
	w.mu.Unlock()
	return id, nil
}

// An app with no running machine: the first requests are held while one
// machine is woken (once, however many requests wait), then served.
func TestWakeHoldsRequests(t *testing.T) {
	p := New("example.test", "local", nil)
	w := &fakeWaker{t: t, p: p, delay: 100 * time.Millisecond}
	p.Waker = w
	s := front(t, p)
	out := make(chan string, 5)
	for i := 0; i < 5; i++ {
		goGet(t, s.URL, "sleepy.example.test", "/", out)
	}
	for i := 0; i < 5; i++ {
		if r := <-out; r != "200 woken1" {
			t.Fatalf("held request: %q", r)
		}
	}
	if n := w.calls.Load(); n != 1 {
		t.Fatalf("%d wakes for one burst, want 1", n)
	}
	st := p.Stats()
	if len(st) != 1 || st[0].Wakes != 1 || st[0].WakeTime.Count != 1 || st[0].WakeTime.Sum < 100*time.Millisecond {
		t.Fatalf("wake stats: %+v", st)
	}
	// Nothing to wake: 503 with the reason, and nothing kept for the host.
	p.Waker = &fakeWaker{t: t, p: p, err: fmt.Errorf("app ghost has no machines: %w", ErrNoCapacity)}
	resp, body := get(t, s, "ghost.example.test", "/")
	if resp.StatusCode != 503 || !strings.Contains(body, "ghost has no machines") {
		t.Fatalf("nothing to wake: %d %q", resp.StatusCode, body)
	}
	poll(t, "ghost forgotten", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.apps["ghost"] == nil
	})
}

// When every running machine is over its soft_limit, one more is started
// while the request is served by the running one.
func TestScaleUpOverSoftLimit(t *testing.T) {
	p := New("example.test", "local", nil)
	w := &fakeWaker{t: t, p: p}
	p.Waker = w
	g := newGate()
	p.SetBackend(g.backend(t, "m1", svcWith(1, 0)), true)
	s := front(t, p)
	out := make(chan string, 2)
	goGet(t, s.URL, "web.example.test", "/slow", out)
	<-g.entered
	if n := w.calls.Load(); n != 0 {
		t.Fatalf("woke %d machines with one under its soft limit", n)
	}
	goGet(t, s.URL, "web.example.test", "/slow", out)
	<-g.entered // served by m1, over its soft limit (no hard limit)
	poll(t, "one more machine woken", func() bool { return w.calls.Load() == 1 })
	close(g.release)
	<-out
	<-out
	// The woken machine joins rotation when its (background) wake ends.
	poll(t, "two routable machines after the scale-up", func() bool { return len(p.Routable("web")) == 2 })
}

// A request waiting in the queue whose client goes away leaves the queue
// at once instead of holding its place until the queue timeout.
func TestQueuedRequestOfDepartedClientLeaves(t *testing.T) {
	p := New("example.test", "local", nil)
	g := newGate()
	p.SetBackend(g.backend(t, "m1", svcWith(1, 1)), true)
	s := front(t, p)
	out := make(chan string, 1)
	goGet(t, s.URL, "web.example.test", "/slow", out)
	<-g.entered
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.test\r\n\r\n")
	poll(t, "request queued", func() bool { return p.Stats()[0].Waiting == 1 })
	c.Close()
	poll(t, "departed request left the queue", func() bool { return p.Stats()[0].Waiting == 0 })
	close(g.release)
	if r := <-out; r != "200 m1" {
		t.Fatalf("slow request: %q", r)
	}
	if n := p.Stats()[0].Machines[0].Served; n != 1 {
		t.Fatalf("machine served %d requests; the departed one must not reach it", n)
	}
}
