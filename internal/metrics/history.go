package metrics

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/types"
)

// History keeps the last hour of a few key series per app, in memory, for
// a dashboard that shows recent activity without a Prometheus (the web
// dashboard reads it through App). Record takes one point (every
// HistoryInterval from Run); history is lost with the daemon.
type History struct {
	Proxy     ProxyStats
	Instances *InstanceCollector // nil: no memory and CPU
	// Keep is how many points are kept per app (default an hour's).
	Keep int

	mu   sync.Mutex // guards apps, prev
	apps map[string][]Point
	prev map[string]appTotals
}

// HistoryInterval is how often Run records a point.
const HistoryInterval = 15 * time.Second

// Point is one app at one time (the API's wire type).
type Point = types.MetricsPoint

// appTotals are an app's cumulative counters at the last point.
type appTotals struct {
	at       time.Time
	requests uint64
	errors   uint64
	latency  proxy.Histogram
}

// Run records a point every HistoryInterval until ctx ends.
func (h *History) Run(ctx context.Context) {
	t := time.NewTicker(HistoryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.Record(now)
		}
	}
}

// Record takes one point for every app the proxy or the instances know.
func (h *History) Record(now time.Time) {
	keep := h.Keep
	if keep == 0 {
		keep = int(time.Hour / HistoryInterval)
	}
	points := map[string]*Point{}
	point := func(app string) *Point {
		if points[app] == nil {
			points[app] = &Point{Time: now}
		}
		return points[app]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.apps == nil {
		h.apps, h.prev = map[string][]Point{}, map[string]appTotals{}
	}
	for _, a := range h.Proxy() {
		cur := appTotals{at: now, latency: a.Latency}
		for code, n := range a.Requests {
			cur.requests += n
			if code >= 500 && code < 600 {
				cur.errors += n
			}
		}
		p := point(a.App)
		if prev, ok := h.prev[a.App]; ok && now.After(prev.at) && cur.requests >= prev.requests {
			dt := now.Sub(prev.at).Seconds()
			p.RequestsPS = float64(cur.requests-prev.requests) / dt
			p.Errors5xxPS = float64(cur.errors-prev.errors) / dt
			p.P99Seconds = quantile(0.99, prev.latency, cur.latency)
		}
		h.prev[a.App] = cur
	}
	if h.Instances != nil {
		h.Instances.mu.Lock()
		last := h.Instances.last
		h.Instances.mu.Unlock()
		for i := range last {
			x := &last[i]
			if !x.in.Running || !x.ok {
				continue
			}
			p := point(x.in.App)
			p.Running++
			p.MemoryBytes += x.s.mem["mem_total"] - x.s.mem["mem_available"]
			p.CPUCores += x.load[0]
		}
	}
	for app, p := range points {
		s := append(h.apps[app], *p)
		if len(s) > keep {
			s = append(s[:0:0], s[len(s)-keep:]...)
		}
		h.apps[app] = s
	}
	for app := range h.apps {
		if points[app] == nil { // gone from the proxy and the host
			delete(h.apps, app)
			delete(h.prev, app)
		}
	}
}

// App returns an app's points, oldest first.
func (h *History) App(app string) []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Point(nil), h.apps[app]...)
}

// Apps lists the apps with history, sorted.
func (h *History) Apps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.apps))
	for a := range h.apps {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// quantile is the upper bound of the bucket holding quantile q of the
// durations counted between two snapshots of a histogram (0 if none).
func quantile(q float64, prev, cur proxy.Histogram) float64 {
	n := cur.Count - prev.Count
	if n == 0 || cur.Count < prev.Count {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	var cum uint64
	for i, c := range cur.Counts {
		var p uint64
		if i < len(prev.Counts) {
			p = prev.Counts[i]
		}
		cum += c - p
		if cum >= rank {
			if i < len(cur.Bounds) {
				return cur.Bounds[i].Seconds()
			}
			return cur.Bounds[len(cur.Bounds)-1].Seconds() // above every bound
		}
	}
	return 0
}
