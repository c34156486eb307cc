package proxy

import (
	"sort"
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the latency histogram buckets; a
// last, unbounded bucket follows.
var LatencyBounds = []time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second,
}

// histogram counts durations into LatencyBounds buckets without locks.
type histogram struct {
	counts [15]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: LatencyBounds, Counts: make([]uint64, len(h.counts)), Sum: time.Duration(h.sum.Load())}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	return out
}

// appStats are the counters of one app, updated without locks on the
// request path.
type appStats struct {
	codes      [600]atomic.Uint64 // by status code; 0 holds codes outside 100-599
	latency    histogram
	wakes      atomic.Uint64
	wakeErrors atomic.Uint64
	wakeTime   histogram
}

func newAppStats() *appStats { return &appStats{} }

func (s *appStats) observe(code int, d time.Duration) {
	if code < 100 || code >= 600 {
		code = 0
	}
	s.codes[code].Add(1)
	s.latency.observe(d)
}

func (s *appStats) observeWake(d time.Duration) {
	s.wakes.Add(1)
	s.wakeTime.observe(d)
}

// Histogram is a snapshot of a latency histogram: Counts[i] durations were
// at most Bounds[i] (and above Bounds[i-1]); the last count is above every
// bound.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Count  uint64
	Sum    time.Duration
}

// MachineStats is the load of one machine as the proxy sees it.
type MachineStats struct {
	ID        string
	Region    string
	Inflight  int // requests in flight (its concurrency)
	SoftLimit int
	HardLimit int // 0: none
	Routable  bool
	Draining  bool
	Served    uint64 // requests routed to it since the proxy learnt of it
}

// AppStats are the proxy's counters for one app, for the metrics exporter.
type AppStats struct {
	App string
	// Requests counts answered requests by status code (499: the client
	// went away first; 0: any other code outside 100-599).
	Requests   map[int]uint64
	Latency    Histogram // time from request to the end of the response
	Machines   []MachineStats
	Waiting    int    // requests waiting for capacity now
	Wakes      uint64 // machines started or resumed for requests
	WakeErrors uint64
	WakeTime   Histogram // time to start or resume a machine for a request
}

// Stats returns a snapshot of every app's counters, sorted by app.
func (p *Proxy) Stats() []AppStats {
	p.mu.Lock()
	out := make([]AppStats, 0, len(p.apps))
	stats := make([]*appStats, 0, len(p.apps))
	for _, a := range p.apps {
		as := AppStats{App: a.name, Waiting: a.waiters}
		for _, m := range a.machines {
			as.Machines = append(as.Machines, MachineStats{ID: m.b.MachineID, Region: m.b.Region, Inflight: m.inflight,
				SoftLimit: m.soft, HardLimit: m.hard, Routable: m.routable, Draining: m.draining, Served: m.served})
		}
		out = append(out, as)
		stats = append(stats, a.stats)
	}
	p.mu.Unlock()
	for i, s := range stats {
		out[i].Requests = map[int]uint64{}
		for code := range s.codes {
			if n := s.codes[code].Load(); n > 0 {
				out[i].Requests[code] = n
			}
		}
		out[i].Latency = s.latency.snapshot()
		out[i].Wakes = s.wakes.Load()
		out[i].WakeErrors = s.wakeErrors.Load()
		out[i].WakeTime = s.wakeTime.snapshot()
		sort.Slice(out[i].Machines, func(a, b int) bool { return out[i].Machines[a].ID < out[i].Machines[b].ID })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}
