package metrics

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/types"
)

// History keeps a few key series per app in memory, for a dashboard that
// shows recent activity without a Prometheus (the web dashboard reads it
// through Window): the last hour at HistoryInterval steps, and the last
// day at CoarseInterval steps (each the average of the fine points it
// covers). Record takes one point (every HistoryInterval from Run);
// history is lost with the daemon. Its memory is bounded: Keep fine and
// KeepCoarse coarse points per app, apps that are gone are dropped.
type History struct {
	Proxy     ProxyStats
	Instances *InstanceCollector // nil: no memory and CPU
	Volumes   Volumes            // nil: no volume usage
	// Keep is how many fine points are kept per app (default an hour's),
	// KeepCoarse how many coarse ones (default a day's).
	Keep, KeepCoarse int

	mu     sync.Mutex // guards apps, coarse, prev
	apps   map[string][]Point
	coarse map[string][]Point
	prev   map[string]appTotals
}

// CoarseInterval is the step of the day-long series.
const CoarseInterval = 5 * time.Minute

// HistoryInterval is how often Run records a point.
const HistoryInterval = 15 * time.Second

// Point is one app at one time (the API's wire type).
type Point = types.MetricsPoint

// appTotals are an app's cumulative counters at the last point.
type appTotals struct {
	at       time.Time
	requests uint64
	errors   uint64
	ok2xx    uint64
	client   uint64 // 4xx
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
	var vols []Volume // read before the lock: the store may be slow
	if h.Volumes != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		vols, _ = h.Volumes(ctx) // none this time if it fails
		cancel()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.apps == nil {
		h.apps, h.coarse, h.prev = map[string][]Point{}, map[string][]Point{}, map[string]appTotals{}
	}
	for _, a := range h.Proxy() {
		cur := appTotals{at: now, latency: a.Latency}
		for code, n := range a.Requests {
			cur.requests += n
			switch {
			case code >= 500 && code < 600:
				cur.errors += n
			case code >= 400 && code < 500:
				cur.client += n
			case code >= 200 && code < 300:
				cur.ok2xx += n
			}
		}
		p := point(a.App)
		for _, m := range a.Machines {
			p.Concurrency += float64(m.Inflight)
		}
		if prev, ok := h.prev[a.App]; ok && now.After(prev.at) && cur.requests >= prev.requests {
			dt := now.Sub(prev.at).Seconds()
			p.RequestsPS = float64(cur.requests-prev.requests) / dt
			p.Errors5xxPS = float64(cur.errors-prev.errors) / dt
			p.Responses4xxPS = float64(cur.client-prev.client) / dt
			p.Responses2xxPS = float64(cur.ok2xx-prev.ok2xx) / dt
			p.P99Seconds = quantile(0.99, prev.latency, cur.latency)
			p.P50Seconds = quantile(0.5, prev.latency, cur.latency)
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
			mem := x.s.mem["mem_total"] - x.s.mem["mem_available"]
			p.MemoryBytes += mem
			p.CPUCores += x.load[0]
			p.Machines = append(p.Machines, types.MachineMetricsPoint{ID: x.in.ID, MemoryBytes: mem, CPUCores: x.load[0]})
		}
	}
	for _, v := range vols {
		if pct, ok := v.UsedPct(); ok && points[v.App] != nil {
			points[v.App].Volumes = append(points[v.App].Volumes, types.VolumeMetricsPoint{ID: v.ID, UsedPct: pct})
		}
	}
	keepCoarse := h.KeepCoarse
	if keepCoarse == 0 {
		keepCoarse = int(24 * time.Hour / CoarseInterval)
	}
	per := int(CoarseInterval / HistoryInterval)
	for app, p := range points {
		sort.Slice(p.Machines, func(i, j int) bool { return p.Machines[i].ID < p.Machines[j].ID })
		sort.Slice(p.Volumes, func(i, j int) bool { return p.Volumes[i].ID < p.Volumes[j].ID })
		s := append(h.apps[app], *p)
		if len(s) > keep {
			s = append(s[:0:0], s[len(s)-keep:]...)
		}
		h.apps[app] = s
		// Every CoarseInterval (by the clock, so all apps together), the
		// fine points since the last coarse one become one.
		if c := h.coarse[app]; len(c) == 0 || !now.Before(c[len(c)-1].Time.Add(CoarseInterval)) {
			var since time.Time
			if len(c) > 0 {
				since = c[len(c)-1].Time
			}
			var window []Point
			for i := len(s) - 1; i >= 0 && len(window) < per && s[i].Time.After(since); i-- {
				window = append(window, s[i])
			}
			c = append(c, average(now, window))
			if len(c) > keepCoarse {
				c = append(c[:0:0], c[len(c)-keepCoarse:]...)
			}
			h.coarse[app] = c
		}
	}
	for app := range h.apps {
		if points[app] == nil { // gone from the proxy and the host
			delete(h.apps, app)
			delete(h.coarse, app)
			delete(h.prev, app)
		}
	}
}

// average is one point standing for ps: rates, times, concurrency,
// memory and CPU averaged, the most machines running, each machine's
// memory and CPU averaged over the points it was in.
func average(at time.Time, ps []Point) Point {
	out := Point{Time: at}
	if len(ps) == 0 {
		return out
	}
	n := float64(len(ps))
	type acc struct {
		mem, cpu float64
		k        int
	}
	machines := map[string]*acc{}
	vols := map[string]*acc{}
	for _, p := range ps {
		for _, v := range p.Volumes {
			a := vols[v.ID]
			if a == nil {
				a = &acc{}
				vols[v.ID] = a
			}
			a.mem += v.UsedPct
			a.k++
		}
		out.RequestsPS += p.RequestsPS / n
		out.Errors5xxPS += p.Errors5xxPS / n
		out.Responses2xxPS += p.Responses2xxPS / n
		out.Responses4xxPS += p.Responses4xxPS / n
		out.P50Seconds += p.P50Seconds / n
		out.P99Seconds += p.P99Seconds / n
		out.Concurrency += p.Concurrency / n
		out.MemoryBytes += p.MemoryBytes / n
		out.CPUCores += p.CPUCores / n
		out.Running = max(out.Running, p.Running)
		for _, m := range p.Machines {
			a := machines[m.ID]
			if a == nil {
				a = &acc{}
				machines[m.ID] = a
			}
			a.mem += m.MemoryBytes
			a.cpu += m.CPUCores
			a.k++
		}
	}
	for id, a := range machines {
		out.Machines = append(out.Machines, types.MachineMetricsPoint{ID: id, MemoryBytes: a.mem / float64(a.k), CPUCores: a.cpu / float64(a.k)})
	}
	sort.Slice(out.Machines, func(i, j int) bool { return out.Machines[i].ID < out.Machines[j].ID })
	for id, a := range vols {
		out.Volumes = append(out.Volumes, types.VolumeMetricsPoint{ID: id, UsedPct: a.mem / float64(a.k)})
	}
	sort.Slice(out.Volumes, func(i, j int) bool { return out.Volumes[i].ID < out.Volumes[j].ID })
	return out
}

// App returns an app's fine points (the last hour), oldest first.
func (h *History) App(app string) []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Point(nil), h.apps[app]...)
}

// Window returns an app's points of the last d, oldest first, and their
// step: the fine points for d up to an hour, the coarse ones beyond.
func (h *History) Window(app string, d time.Duration) ([]Point, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	src, step := h.apps[app], HistoryInterval
	if d > time.Hour {
		src, step = h.coarse[app], CoarseInterval
	}
	if len(src) == 0 {
		return nil, step
	}
	from := src[len(src)-1].Time.Add(-d)
	i := sort.Search(len(src), func(i int) bool { return src[i].Time.After(from) })
	return append([]Point(nil), src[i:]...), step
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
