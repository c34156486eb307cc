package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/proxy"
)

// History turns the proxy's counters into per-interval rates and a p99,
// adds the machines' memory, keeps at most Keep points, and forgets an app
// that is gone.
func TestHistory(t *testing.T) {
	h := proxy.Histogram{Bounds: proxy.LatencyBounds, Counts: make([]uint64, len(proxy.LatencyBounds)+1)}
	stats := []proxy.AppStats{{App: "web", Requests: map[int]uint64{200: 0}, Latency: h}}
	dir := t.TempDir()
	fs := fakeCgroups(t, dir, "m1")
	ic := NewInstanceCollector(func(context.Context) ([]Instance, error) {
		return []Instance{{App: "web", ID: "m1", Running: true, CPUs: 1, MemoryMB: 256}}, nil
	}, fs)
	ic.Sample(context.Background())
	hist := &History{Proxy: func() []proxy.AppStats { return stats }, Instances: ic, Keep: 3}
	t0 := time.Unix(1000, 0)
	hist.Record(t0)
	// 150 requests in 15 s: 140 fast (under 1 ms), 9 at 100 ms, 1 at 5 s;
	// 15 answered 503.
	h2 := proxy.Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Count: 150}
	h2.Counts[1], h2.Counts[7], h2.Counts[12] = 140, 9, 1
	stats = []proxy.AppStats{{App: "web", Requests: map[int]uint64{200: 135, 503: 15}, Latency: h2}}
	hist.Record(t0.Add(15 * time.Second))
	pts := hist.App("web")
	if len(pts) != 2 {
		t.Fatalf("%d points", len(pts))
	}
	p := pts[1]
	if p.RequestsPS != 10 || p.Errors5xxPS != 1 || p.P99Seconds != 0.1 {
		t.Fatalf("point: %+v, want 10 req/s, 1 5xx/s, p99 0.1 s", p)
	}
	if p.Running != 1 || p.MemoryBytes <= 0 || p.MemoryBytes > 256<<20 {
		t.Fatalf("machines in the point: %+v", p)
	}
	for i := 2; i < 6; i++ {
		hist.Record(t0.Add(time.Duration(i) * 15 * time.Second))
	}
	if n := len(hist.App("web")); n != 3 {
		t.Fatalf("%d points kept, want 3", n)
	}
	stats = nil
	ic.list = func(context.Context) ([]Instance, error) { return nil, nil }
	ic.Sample(context.Background())
	hist.Record(t0.Add(time.Hour))
	if apps := hist.Apps(); len(apps) != 0 {
		t.Fatalf("history of a gone app kept: %v", apps)
	}
}
