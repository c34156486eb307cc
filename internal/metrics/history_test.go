package metrics

import (
	"context"
	"math"
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
	hist := &History{Proxy: func() []proxy.AppStats { return stats }, Instances: ic, Keep: 3,
		Volumes: func(context.Context) ([]Volume, error) {
			return []Volume{{ID: "vol_1", App: "web", Blocks: 1000, BlocksFree: 250, BlocksAvail: 250}, {ID: "vol_x", App: "web"}}, nil
		}}
	t0 := time.Unix(1000, 0)
	hist.Record(t0)
	// 150 requests in 15 s: 140 fast (under 1 ms), 9 at 100 ms, 1 at 5 s;
	// 15 answered 503.
	h2 := proxy.Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts)), Count: 150}
	h2.Counts[1], h2.Counts[7], h2.Counts[12] = 140, 9, 1
	stats = []proxy.AppStats{{App: "web", Requests: map[int]uint64{200: 120, 404: 15, 503: 15}, Latency: h2,
		Machines: []proxy.MachineStats{{ID: "m1", Inflight: 3}}}}
	hist.Record(t0.Add(15 * time.Second))
	pts := hist.App("web")
	if len(pts) != 2 {
		t.Fatalf("%d points", len(pts))
	}
	p := pts[1]
	if p.RequestsPS != 10 || p.Errors5xxPS != 1 || p.P99Seconds != 0.1 {
		t.Fatalf("point: %+v, want 10 req/s, 1 5xx/s, p99 0.1 s", p)
	}
	if p.Responses2xxPS != 8 || p.Responses4xxPS != 1 || p.P50Seconds != h.Bounds[1].Seconds() || p.Concurrency != 3 {
		t.Fatalf("point: %+v, want 8 2xx/s, 1 4xx/s, p50 %v, concurrency 3", p, h.Bounds[1])
	}
	if len(p.Machines) != 1 || p.Machines[0].ID != "m1" || p.Machines[0].MemoryBytes != p.MemoryBytes {
		t.Fatalf("per machine: %+v", p.Machines)
	}
	// vol_1: 750 blocks used of 750 + 250 a user may use; vol_x is not
	// mounted (no blocks) and has no usage.
	if len(p.Volumes) != 1 || p.Volumes[0].ID != "vol_1" || p.Volumes[0].UsedPct != 75 {
		t.Fatalf("volumes: %+v", p.Volumes)
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

// TestHistoryWindows: a day is kept at 5-minute steps, each the average of
// the 15 s points it covers; a window of an hour or less is read from the
// 15 s points.
func TestHistoryWindows(t *testing.T) {
	var reqs uint64
	h := proxy.Histogram{Bounds: proxy.LatencyBounds, Counts: make([]uint64, len(proxy.LatencyBounds)+1)}
	hist := &History{Proxy: func() []proxy.AppStats {
		return []proxy.AppStats{{App: "web", Requests: map[int]uint64{200: reqs}, Latency: h}}
	}}
	t0 := time.Unix(100000, 0)
	for i := 0; i <= 44; i++ { // 11 minutes at 15 s, 30 requests a step
		hist.Record(t0.Add(time.Duration(i) * HistoryInterval))
		reqs += 30
	}
	fine, step := hist.Window("web", 5*time.Minute)
	if step != HistoryInterval || len(fine) != 20 {
		t.Fatalf("5m window: %d points at %v, want 20 at 15s", len(fine), step)
	}
	if fine[len(fine)-1].RequestsPS != 2 {
		t.Fatalf("last point %+v, want 2 req/s", fine[len(fine)-1])
	}
	coarse, step := hist.Window("web", 24*time.Hour)
	if step != CoarseInterval || len(coarse) != 3 {
		t.Fatalf("24h window: %d points at %v, want 3 at 5m: %+v", len(coarse), step, coarse)
	}
	if c := coarse[1]; math.Abs(c.RequestsPS-2) > 1e-9 || !c.Time.Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("coarse point %+v, want the average 2 req/s at t0+5m", c)
	}
	if all, _ := hist.Window("web", time.Hour); len(all) != 45 {
		t.Fatalf("1h window: %d points, want all 45", len(all))
	}
	if none, _ := hist.Window("other", time.Hour); none != nil {
		t.Fatalf("an app without history: %v", none)
	}
}
