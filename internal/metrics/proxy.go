package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-dev/hangar/internal/proxy"
)

// ProxyStats is the proxy's snapshot of its counters (Proxy.Stats).
type ProxyStats func() []proxy.AppStats

// proxyCollector turns the proxy's counters into Fly's edge (per app) and
// app (per app and machine) series at scrape time.
type proxyCollector struct {
	stats ProxyStats

	edgeResponses, edgeTime, edgeConnects, edgeDisconnects, edgeIn, edgeOut        *prometheus.Desc
	appConcurrency, appResponses, appTime, appConnect, appConnects, appDisconnects *prometheus.Desc
	wakeTime, waiting                                                              *prometheus.Desc
}

// NewProxyCollector makes the collector of the proxy's series.
func NewProxyCollector(stats ProxyStats) prometheus.Collector {
	app := []string{LabelApp}
	inst := []string{LabelApp, LabelInstance}
	return &proxyCollector{
		stats:           stats,
		edgeResponses:   prometheus.NewDesc("fly_edge_http_responses_count", "HTTP responses the edge proxy sent to clients, by status.", []string{LabelApp, "status"}, nil),
		edgeTime:        prometheus.NewDesc("fly_edge_http_response_time_seconds", "Time from a client's request to the end of the edge proxy's response, by status.", []string{LabelApp, "status"}, nil),
		edgeConnects:    prometheus.NewDesc("fly_edge_tcp_connects_count", "Client connections to the edge proxy (counted for the app of their first request).", app, nil),
		edgeDisconnects: prometheus.NewDesc("fly_edge_tcp_disconnects_count", "Client connections closed.", app, nil),
		edgeIn:          prometheus.NewDesc("fly_edge_data_in", "Bytes received from clients.", app, nil),
		edgeOut:         prometheus.NewDesc("fly_edge_data_out", "Bytes sent to clients.", app, nil),
		appConcurrency:  prometheus.NewDesc("fly_app_concurrency", "Requests in flight to the instance.", inst, nil),
		appResponses:    prometheus.NewDesc("fly_app_http_responses_count", "HTTP responses of the instance, by status.", []string{LabelApp, LabelInstance, "status"}, nil),
		appTime:         prometheus.NewDesc("fly_app_http_response_time_seconds", "Time the instance took to answer, by status.", []string{LabelApp, LabelInstance, "status"}, nil),
		appConnect:      prometheus.NewDesc("fly_app_connect_time_seconds", "Time for the proxy to connect to the instance.", inst, nil),
		appConnects:     prometheus.NewDesc("fly_app_tcp_connects_count", "Connections the proxy opened to the instance.", inst, nil),
		appDisconnects:  prometheus.NewDesc("fly_app_tcp_disconnects_count", "Connections from the proxy to the instance closed.", inst, nil),
		wakeTime:        prometheus.NewDesc("hangar_proxy_wake_seconds", "Time a request was held while the proxy woke (started or resumed) a machine of the app.", app, nil),
		waiting:         prometheus.NewDesc("hangar_proxy_waiting_requests", "Requests waiting for capacity (hard_limit queue or a wake).", app, nil),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.edgeResponses, c.edgeTime, c.edgeConnects, c.edgeDisconnects, c.edgeIn, c.edgeOut,
		c.appConcurrency, c.appResponses, c.appTime, c.appConnect, c.appConnects, c.appDisconnects, c.wakeTime, c.waiting} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.stats() {
		for code, n := range a.Requests {
			ch <- prometheus.MustNewConstMetric(c.edgeResponses, prometheus.CounterValue, float64(n), a.App, statusLabel(code))
		}
		for code, h := range a.LatencyByStatus {
			ch <- constHistogram(c.edgeTime, h, a.App, statusLabel(code))
		}
		ch <- prometheus.MustNewConstMetric(c.edgeConnects, prometheus.CounterValue, float64(a.TCPConnects), a.App)
		ch <- prometheus.MustNewConstMetric(c.edgeDisconnects, prometheus.CounterValue, float64(a.TCPDisconnects), a.App)
		ch <- prometheus.MustNewConstMetric(c.edgeIn, prometheus.CounterValue, float64(a.DataIn), a.App)
		ch <- prometheus.MustNewConstMetric(c.edgeOut, prometheus.CounterValue, float64(a.DataOut), a.App)
		ch <- constHistogram(c.wakeTime, a.WakeTime, a.App)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(a.Waiting), a.App)
		for _, m := range a.Machines {
			ch <- prometheus.MustNewConstMetric(c.appConcurrency, prometheus.GaugeValue, float64(m.Inflight), a.App, m.ID)
			for code, n := range m.Requests {
				ch <- prometheus.MustNewConstMetric(c.appResponses, prometheus.CounterValue, float64(n), a.App, m.ID, statusLabel(code))
			}
			for code, h := range m.LatencyByStatus {
				ch <- constHistogram(c.appTime, h, a.App, m.ID, statusLabel(code))
			}
			ch <- constHistogram(c.appConnect, m.ConnectTime, a.App, m.ID)
			ch <- prometheus.MustNewConstMetric(c.appConnects, prometheus.CounterValue, float64(m.TCPConnects), a.App, m.ID)
			ch <- prometheus.MustNewConstMetric(c.appDisconnects, prometheus.CounterValue, float64(m.TCPDisconnects), a.App, m.ID)
		}
	}
}

// statusLabel is a status code as a label ("0" for codes outside 100-599).
func statusLabel(code int) string { return strconv.Itoa(code) }

// constHistogram turns a proxy histogram snapshot into a Prometheus one
// (cumulative buckets, seconds).
func constHistogram(d *prometheus.Desc, h proxy.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum.Seconds(), buckets, labels...)
}
