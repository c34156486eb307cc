package metrics

import (
	"sort"
	"strconv"

	"github.com/hangar-dev/hangar/internal/proxy"
)

// ProxyStats is the proxy's snapshot of its counters (Proxy.Stats).
type ProxyStats func() []proxy.AppStats

// ProxyCollector turns the proxy's counters into Fly's edge (per app) and
// app (per app and machine) series when scraped.
type ProxyCollector struct{ stats ProxyStats }

// NewProxyCollector makes the collector of the proxy's series.
func NewProxyCollector(stats ProxyStats) *ProxyCollector { return &ProxyCollector{stats: stats} }

// WriteText implements TextCollector.
func (c *ProxyCollector) WriteText(t *TextWriter, only string) {
	var apps []proxy.AppStats
	for _, a := range c.stats() {
		if only == "" || a.App == only {
			apps = append(apps, a)
		}
	}
	if len(apps) == 0 {
		return
	}
	app := func(a *proxy.AppStats) []string { return []string{LabelApp, a.App} }
	codes := func(m map[int]uint64) []int {
		out := make([]int, 0, len(m))
		for c := range m {
			out = append(out, c)
		}
		sort.Ints(out)
		return out
	}
	hcodes := func(m map[int]proxy.Histogram) []int {
		out := make([]int, 0, len(m))
		for c := range m {
			out = append(out, c)
		}
		sort.Ints(out)
		return out
	}
	// Edge: per app.
	t.Family("fly_edge_http_responses_count", "HTTP responses the edge proxy sent to clients, by status.", "counter")
	for i := range apps {
		a := &apps[i]
		for _, code := range codes(a.Requests) {
			t.Sample("fly_edge_http_responses_count", float64(a.Requests[code]), LabelApp, a.App, "status", strconv.Itoa(code))
		}
	}
	t.Family("fly_edge_http_response_time_seconds", "Time from a client's request to the end of the edge proxy's response, by status.", "histogram")
	for i := range apps {
		a := &apps[i]
		for _, code := range hcodes(a.LatencyByStatus) {
			t.Histogram("fly_edge_http_response_time_seconds", a.LatencyByStatus[code], LabelApp, a.App, "status", strconv.Itoa(code))
		}
	}
	counters := []struct {
		name, help string
		v          func(a *proxy.AppStats) uint64
	}{
		{"fly_edge_tcp_connects_count", "Client connections to the edge proxy (counted for the app of their first request).", func(a *proxy.AppStats) uint64 { return a.TCPConnects }},
		{"fly_edge_tcp_disconnects_count", "Client connections closed.", func(a *proxy.AppStats) uint64 { return a.TCPDisconnects }},
		{"fly_edge_data_in", "Bytes received from clients.", func(a *proxy.AppStats) uint64 { return a.DataIn }},
		{"fly_edge_data_out", "Bytes sent to clients.", func(a *proxy.AppStats) uint64 { return a.DataOut }},
	}
	for _, c := range counters {
		t.Family(c.name, c.help, "counter")
		for i := range apps {
			t.Sample(c.name, float64(c.v(&apps[i])), app(&apps[i])...)
		}
	}
	t.Family("hangar_proxy_wake_seconds", "Time a request was held while the proxy woke (started or resumed) a machine of the app.", "histogram")
	for i := range apps {
		t.Histogram("hangar_proxy_wake_seconds", apps[i].WakeTime, app(&apps[i])...)
	}
	t.Family("hangar_proxy_waiting_requests", "Requests waiting for capacity (hard_limit queue or a wake).", "gauge")
	for i := range apps {
		t.Sample("hangar_proxy_waiting_requests", float64(apps[i].Waiting), app(&apps[i])...)
	}
	// App: per app and machine.
	t.Family("fly_app_concurrency", "Requests in flight to the instance.", "gauge")
	for i := range apps {
		for _, m := range apps[i].Machines {
			t.Sample("fly_app_concurrency", float64(m.Inflight), LabelApp, apps[i].App, LabelInstance, m.ID)
		}
	}
	t.Family("fly_app_http_responses_count", "HTTP responses of the instance, by status.", "counter")
	for i := range apps {
		for _, m := range apps[i].Machines {
			for _, code := range codes(m.Requests) {
				t.Sample("fly_app_http_responses_count", float64(m.Requests[code]), LabelApp, apps[i].App, LabelInstance, m.ID, "status", strconv.Itoa(code))
			}
		}
	}
	t.Family("fly_app_http_response_time_seconds", "Time the instance took to answer, by status.", "histogram")
	for i := range apps {
		for _, m := range apps[i].Machines {
			for _, code := range hcodes(m.LatencyByStatus) {
				t.Histogram("fly_app_http_response_time_seconds", m.LatencyByStatus[code], LabelApp, apps[i].App, LabelInstance, m.ID, "status", strconv.Itoa(code))
			}
		}
	}
	t.Family("fly_app_connect_time_seconds", "Time for the proxy to connect to the instance.", "histogram")
	for i := range apps {
		for _, m := range apps[i].Machines {
			t.Histogram("fly_app_connect_time_seconds", m.ConnectTime, LabelApp, apps[i].App, LabelInstance, m.ID)
		}
	}
	t.Family("fly_app_tcp_connects_count", "Connections the proxy opened to the instance.", "counter")
	for i := range apps {
		for _, m := range apps[i].Machines {
			t.Sample("fly_app_tcp_connects_count", float64(m.TCPConnects), LabelApp, apps[i].App, LabelInstance, m.ID)
		}
	}
	t.Family("fly_app_tcp_disconnects_count", "Connections from the proxy to the instance closed.", "counter")
	for i := range apps {
		for _, m := range apps[i].Machines {
			t.Sample("fly_app_tcp_disconnects_count", float64(m.TCPDisconnects), LabelApp, apps[i].App, LabelInstance, m.ID)
		}
	}
}
