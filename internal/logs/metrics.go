package logs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-dev/hangar/internal/logs/logfile"
)

// Metrics are the logs' counters, as Prometheus collectors (Collectors);
// the daemon registers them. A nil *Metrics counts nothing.
type Metrics struct {
	// LogsDir is <data-dir>/logs, where the shims' counts of lost lines
	// are read at each scrape.
	LogsDir string

	shippedLines   *prometheus.CounterVec
	shippedBatches *prometheus.CounterVec
	shipErrors     *prometheus.CounterVec
	published      prometheus.Counter
	retention      *prometheus.CounterVec
	retentionFiles *prometheus.CounterVec
	lost           *prometheus.Desc
	natsClients    prometheus.GaugeFunc
	natsSlow       prometheus.CounterFunc
	nats           func() (clients int, slow int64)
}

// NewMetrics returns the logs' metrics; nats, when not nil, reports the
// NATS server's client count and slow consumers.
func NewMetrics(logsDir string) *Metrics {
	m := &Metrics{
		LogsDir: logsDir,
		shippedLines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_log_sink_lines_shipped_total",
			Help: "Log lines an HTTP log sink acknowledged (2xx), by sink id."}, []string{"sink"}),
		shippedBatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_log_sink_batches_shipped_total",
			Help: "Batches of log lines an HTTP log sink acknowledged, by sink id."}, []string{"sink"}),
		shipErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_log_sink_errors_total",
			Help: "Failed deliveries to an HTTP log sink (each retried), by sink id."}, []string{"sink"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "hangar_log_nats_lines_published_total",
			Help: "Log lines published on the NATS log stream."}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_log_retention_removed_bytes_total",
			Help: "Bytes of machine log files removed by retention, by reason (age, size)."}, []string{"reason"}),
		retentionFiles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_log_retention_removed_files_total",
			Help: "Machine log files removed by retention, by reason (age, size)."}, []string{"reason"}),
		lost: prometheus.NewDesc("hangar_log_lines_lost_total",
			"Log lines machines wrote that could not be written to their log (a full disk), by app; counted by each machine's shim, kept with its logs.",
			[]string{"app"}, nil),
	}
	m.natsClients = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hangar_log_nats_clients",
		Help: "Clients connected to the NATS log stream (the daemon's own publisher included)."}, func() float64 {
		if m.nats == nil {
			return 0
		}
		n, _ := m.nats()
		return float64(n)
	})
	m.natsSlow = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hangar_log_nats_slow_consumers_total",
		Help: "NATS log stream subscribers cut off for not keeping up (their lines dropped by the NATS server)."}, func() float64 {
		if m.nats == nil {
			return 0
		}
		_, slow := m.nats()
		return float64(slow)
	})
	return m
}

// SetNATS makes the metrics report a NATS server's clients and slow
// consumers.
func (m *Metrics) SetNATS(f func() (clients int, slow int64)) {
	if m != nil {
		m.nats = f
	}
}

// Collectors returns the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.shippedLines, m.shippedBatches, m.shipErrors, m.published, m.retention, m.retentionFiles,
		lostCollector{m}, m.natsClients, m.natsSlow}
}

// RetentionRemoved counts a file removed by retention (the LogJanitor's
// Removed).
func (m *Metrics) RetentionRemoved(app, reason string, bytes int64) {
	if m == nil {
		return
	}
	m.retention.WithLabelValues(reason).Add(float64(bytes))
	m.retentionFiles.WithLabelValues(reason).Inc()
}

func (m *Metrics) shipped(sink string, lines int) {
	if m == nil {
		return
	}
	m.shippedLines.WithLabelValues(sink).Add(float64(lines))
	m.shippedBatches.WithLabelValues(sink).Inc()
}

func (m *Metrics) shipError(sink string) {
	if m != nil {
		m.shipErrors.WithLabelValues(sink).Inc()
	}
}

func (m *Metrics) publishedLines(n int) {
	if m != nil {
		m.published.Add(float64(n))
	}
}

// lostCollector reads the shims' counts of lost lines at each scrape.
type lostCollector struct{ m *Metrics }

func (c lostCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.lost }

func (c lostCollector) Collect(ch chan<- prometheus.Metric) {
	for app, n := range LostLines(c.m.LogsDir) {
		ch <- prometheus.MustNewConstMetric(c.m.lost, prometheus.CounterValue, float64(n), app)
	}
}

// LostPath is logfile.LostPath: <id>.lost beside <id>.log.
func LostPath(logPath string) string { return logfile.LostPath(logPath) }

// LostLines sums the machines' counts of lost lines per app, under
// logsDir (<data-dir>/logs).
func LostLines(logsDir string) map[string]int64 {
	out := map[string]int64{}
	apps, _ := os.ReadDir(logsDir)
	for _, a := range apps {
		if !a.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(logsDir, a.Name(), "*.lost"))
		out[a.Name()] += 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
				out[a.Name()] += n
			}
		}
	}
	return out
}
