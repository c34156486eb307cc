package proxy

import (
	"sort"
	"sync/atomic"
	"time"
)

// The proxy's counters are kept here, per app and per machine, in
// structures resolved once (when the app or machine becomes known): a
// request adds to them with atomic operations only, no map lookup and no
// lock. The metrics exporter (internal/metrics) reads a snapshot (Stats)
// when it is scraped. Proxy.NoStats turns the counting off.

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

// add adds o's counts to h (a snapshot).
func (h *Histogram) add(o Histogram) {
	if h.Counts == nil {
		h.Bounds, h.Counts = o.Bounds, make([]uint64, len(o.Counts))
	}
	for i, n := range o.Counts {
		h.Counts[i] += n
	}
	h.Count += o.Count
	h.Sum += o.Sum
}

// statusStats count responses and their latency by status code; a code's
// histogram is allocated at its first response.
type statusStats struct {
	codes [600]atomic.Uint64 // by status code; 0 holds codes outside 100-599
	lat   [600]atomic.Pointer[histogram]
}

func (s *statusStats) observe(code int, d time.Duration) {
	if code < 100 || code >= 600 {
		code = 0
	}
	s.codes[code].Add(1)
	h := s.lat[code].Load()
	if h == nil {
		s.lat[code].CompareAndSwap(nil, &histogram{})
		h = s.lat[code].Load()
	}
	h.observe(d)
}

// snapshot returns the counts and histograms of the codes seen.
func (s *statusStats) snapshot() (map[int]uint64, map[int]Histogram) {
	counts, hists := map[int]uint64{}, map[int]Histogram{}
	for code := range s.codes {
		if n := s.codes[code].Load(); n > 0 {
			counts[code] = n
		}
		if h := s.lat[code].Load(); h != nil {
			hists[code] = h.snapshot()
		}
	}
	return counts, hists
}

// appStats are the edge counters of one app: requests as the client saw
// them, and its client connections.
type appStats struct {
	statusStats
	dataIn, dataOut atomic.Uint64 // bytes from and to clients
	connects        atomic.Uint64 // client connections whose first request was for the app
	disconnects     atomic.Uint64
	wakes           atomic.Uint64
	wakeErrors      atomic.Uint64
	wakeTime        histogram
}

func newAppStats() *appStats { return &appStats{} }

func (s *appStats) observeWake(d time.Duration) {
	s.wakes.Add(1)
	s.wakeTime.observe(d)
}

// machineStats are the counters of one machine: the requests the proxy
// sent it, and its connections from the proxy.
type machineStats struct {
	statusStats
	connect     histogram // time to connect to the machine
	connects    atomic.Uint64
	disconnects atomic.Uint64
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
	// Requests and LatencyByStatus are the answers the machine gave, by
	// status code (as AppStats's).
	Requests        map[int]uint64
	LatencyByStatus map[int]Histogram
	ConnectTime     Histogram // time to open a connection to it
	TCPConnects     uint64    // connections opened to it
	TCPDisconnects  uint64    // and closed
}

// AppStats are the proxy's counters for one app, for the metrics exporter.
type AppStats struct {
	App string
	// Requests counts answered requests by status code (499: the client
	// went away first; 0: any other code outside 100-599).
	Requests        map[int]uint64
	Latency         Histogram         // time from request to the end of the response
	LatencyByStatus map[int]Histogram // the same by status code
	Machines        []MachineStats
	Waiting         int    // requests waiting for capacity now
	Wakes           uint64 // machines started or resumed for requests
	WakeErrors      uint64
	WakeTime        Histogram // time to start or resume a machine for a request
	// DataIn and DataOut are the bytes read from and written to clients,
	// TCPConnects and TCPDisconnects the client connections (fast path:
	// counted for the app of a connection's first request).
	DataIn, DataOut             uint64
	TCPConnects, TCPDisconnects uint64
}

// Stats returns a snapshot of every app's counters, sorted by app.
func (p *Proxy) Stats() []AppStats {
	p.mu.Lock()
	out := make([]AppStats, 0, len(p.apps))
	stats := make([]*appStats, 0, len(p.apps))
	var mstats [][]*machineStats
	for _, a := range p.apps {
		as := AppStats{App: a.name, Waiting: a.waiters}
		var ms []*machineStats
		for _, m := range a.machines {
			as.Machines = append(as.Machines, MachineStats{ID: m.b.MachineID, Region: m.b.Region, Inflight: m.inflight,
				SoftLimit: m.soft, HardLimit: m.hard, Routable: m.routable, Draining: m.draining, Served: m.served})
			ms = append(ms, m.stats)
		}
		out = append(out, as)
		stats = append(stats, a.stats)
		mstats = append(mstats, ms)
	}
	p.mu.Unlock()
	for i, s := range stats {
		o := &out[i]
		o.Requests, o.LatencyByStatus = s.snapshot()
		for _, h := range o.LatencyByStatus {
			o.Latency.add(h)
		}
		if o.Latency.Counts == nil {
			o.Latency = (&histogram{}).snapshot()
		}
		o.Wakes = s.wakes.Load()
		o.WakeErrors = s.wakeErrors.Load()
		o.WakeTime = s.wakeTime.snapshot()
		o.DataIn, o.DataOut = s.dataIn.Load(), s.dataOut.Load()
		o.TCPConnects, o.TCPDisconnects = s.connects.Load(), s.disconnects.Load()
		for j, ms := range mstats[i] {
			m := &o.Machines[j]
			m.Requests, m.LatencyByStatus = ms.snapshot()
			m.ConnectTime = ms.connect.snapshot()
			m.TCPConnects, m.TCPDisconnects = ms.connects.Load(), ms.disconnects.Load()
		}
		sort.Slice(o.Machines, func(a, b int) bool { return o.Machines[a].ID < o.Machines[b].ID })
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}
