package metrics

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The app metrics scraper: Fly scrapes an app's [metrics] port and path
// every 15 s on each of its machines and stores the series with the app's
// labels. Hangar does the same and serves them on /metrics (federated,
// as Fly's Prometheus would be).
const (
	// ScrapeInterval is how often each started machine is scraped.
	ScrapeInterval = 15 * time.Second
	// ScrapeTimeout bounds one scrape.
	ScrapeTimeout = 10 * time.Second
	// ScrapeMaxBytes caps one scrape's body; a bigger one is cut off and
	// counted as a failure.
	ScrapeMaxBytes = 16 << 20
)

// AppScraper scrapes the [metrics] endpoint of every started machine that
// has one, and serves what it got with app, instance, region and host
// labels (as a prometheus.Gatherer). Scrape failures are series, never
// errors of the daemon: hangar_app_metrics_up and
// hangar_app_metrics_scrape_failures_count.
type AppScraper struct {
	List   Instances
	Region string
	Host   string
	// Interval, Timeout and MaxBytes default to ScrapeInterval,
	// ScrapeTimeout and ScrapeMaxBytes.
	Interval, Timeout time.Duration
	MaxBytes          int64
	Log               *slog.Logger

	once     sync.Once
	client   *http.Client
	failures *prometheus.CounterVec
	up       *prometheus.GaugeVec
	duration *prometheus.GaugeVec

	mu      sync.Mutex // guards results
	results map[string]*scraped
}

// scraped is the last good scrape of one machine, its series rendered in
// the text format with the labels added (once per scrape, not per
// /metrics request).
type scraped struct {
	app, instance string
	families      map[string]*rendered
}

type rendered struct {
	help, typ string
	lines     []byte
}

func (s *AppScraper) init() {
	s.once.Do(func() {
		if s.Interval == 0 {
			s.Interval = ScrapeInterval
		}
		if s.Timeout == 0 {
			s.Timeout = ScrapeTimeout
		}
		if s.MaxBytes == 0 {
			s.MaxBytes = ScrapeMaxBytes
		}
		if s.Log == nil {
			s.Log = slog.Default()
		}
		s.client = &http.Client{Timeout: s.Timeout, Transport: &http.Transport{
			DialContext:       (&net.Dialer{Timeout: s.Timeout}).DialContext,
			DisableKeepAlives: true, Proxy: nil,
		}}
		l := []string{LabelApp, LabelInstance}
		s.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_app_metrics_scrape_failures_count",
			Help: "Failed scrapes of an instance's [metrics] endpoint, by reason (connect, timeout, status, too_large, parse)."}, append(l, "reason"))
		s.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hangar_app_metrics_up",
			Help: "1 if the last scrape of the instance's [metrics] endpoint succeeded, else 0."}, l)
		s.duration = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hangar_app_metrics_scrape_seconds",
			Help: "Duration of the last scrape of the instance's [metrics] endpoint."}, l)
		s.results = map[string]*scraped{}
	})
}

// Collectors are the scraper's own series, to register.
func (s *AppScraper) Collectors() []prometheus.Collector {
	s.init()
	return []prometheus.Collector{s.failures, s.up, s.duration}
}

// Run scrapes every Interval until ctx ends.
func (s *AppScraper) Run(ctx context.Context) {
	s.init()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		s.ScrapeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScrapeAll scrapes every started machine with [metrics] once (a few at a
// time) and forgets the machines that no longer run or have no [metrics].
func (s *AppScraper) ScrapeAll(ctx context.Context) {
	s.init()
	insts, err := s.List(ctx)
	if err != nil {
		s.Log.Warn("app metrics: list machines", "err", err)
		return
	}
	keep := map[string]bool{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, in := range insts {
		if !in.Running || in.Metrics == nil || in.Metrics.Port == 0 || in.Addr == "" {
			continue
		}
		keep[in.ID] = true
		wg.Add(1)
		sem <- struct{}{}
		go func(in Instance) {
			defer func() { <-sem; wg.Done() }()
			s.scrapeOne(ctx, in)
		}(in)
	}
	wg.Wait()
	s.mu.Lock()
	for id, r := range s.results {
		if !keep[id] {
			delete(s.results, id)
			s.up.DeleteLabelValues(r.app, r.instance)
			s.duration.DeleteLabelValues(r.app, r.instance)
		}
	}
	s.mu.Unlock()
}

func (s *AppScraper) scrapeOne(ctx context.Context, in Instance) {
	t := time.Now()
	fams, reason, err := s.fetch(ctx, in)
	s.duration.WithLabelValues(in.App, in.ID).Set(time.Since(t).Seconds())
	if err != nil {
		s.failures.WithLabelValues(in.App, in.ID, reason).Inc()
		s.up.WithLabelValues(in.App, in.ID).Set(0)
		s.Log.Debug("app metrics: scrape failed", "app", in.App, "machine", in.ID, "reason", reason, "err", err)
		s.mu.Lock()
		if s.results[in.ID] == nil { // an entry, so that the up series goes with the machine
			s.results[in.ID] = &scraped{app: in.App, instance: in.ID}
		} else {
			s.results[in.ID].families = nil
		}
		s.mu.Unlock()
		return
	}
	s.up.WithLabelValues(in.App, in.ID).Set(1)
	r := &scraped{app: in.App, instance: in.ID, families: s.render(in, fams)}
	s.mu.Lock()
	s.results[in.ID] = r
	s.mu.Unlock()
}

// fetch scrapes one machine: its families, or a failure reason and error.
func (s *AppScraper) fetch(ctx context.Context, in Instance) (map[string]*dto.MetricFamily, string, error) {
	path := in.Metrics.Path
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	url := "http://" + net.JoinHostPort(in.Addr, strconv.Itoa(in.Metrics.Port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "connect", err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, "timeout", err
		}
		return nil, "connect", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "status", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.MaxBytes+1))
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, "timeout", err
		}
		return nil, "connect", err
	}
	if int64(len(body)) > s.MaxBytes {
		return nil, "too_large", fmt.Errorf("GET %s: over %d bytes", url, s.MaxBytes)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, "parse", fmt.Errorf("GET %s: %w", url, err)
	}
	return fams, "", nil
}

// reserved are the labels the scraper sets; the app's own values of them
// are replaced, as on Fly.
var reserved = map[string]bool{LabelApp: true, LabelInstance: true, LabelRegion: true, LabelHost: true}

// render writes one machine's families in the text format, each series
// with app and instance (and, by the writer, region and host) labels.
func (s *AppScraper) render(in Instance, fams map[string]*dto.MetricFamily) map[string]*rendered {
	out := make(map[string]*rendered, len(fams))
	var buf bytes.Buffer
	for name, mf := range fams {
		buf.Reset()
		bw := bufio.NewWriter(&buf)
		t := newTextWriter(bw, s.Region, s.Host)
		typ := "untyped"
		for _, m := range mf.Metric {
			labels := []string{LabelApp, in.App, LabelInstance, in.ID}
			for _, l := range m.Label {
				if !reserved[l.GetName()] {
					labels = append(labels, l.GetName(), l.GetValue())
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				typ = "counter"
				t.Sample(name, m.GetCounter().GetValue(), labels...)
			case dto.MetricType_GAUGE:
				typ = "gauge"
				t.Sample(name, m.GetGauge().GetValue(), labels...)
			case dto.MetricType_HISTOGRAM:
				typ = "histogram"
				h := m.GetHistogram()
				for _, b := range h.Bucket {
					t.Sample(name+"_bucket", float64(b.GetCumulativeCount()), append(labels, "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))...)
				}
				t.Sample(name+"_bucket", float64(h.GetSampleCount()), append(labels, "le", "+Inf")...)
				t.Sample(name+"_sum", h.GetSampleSum(), labels...)
				t.Sample(name+"_count", float64(h.GetSampleCount()), labels...)
			case dto.MetricType_SUMMARY:
				typ = "summary"
				sm := m.GetSummary()
				for _, q := range sm.Quantile {
					t.Sample(name, q.GetValue(), append(labels, "quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))...)
				}
				t.Sample(name+"_sum", sm.GetSampleSum(), labels...)
				t.Sample(name+"_count", float64(sm.GetSampleCount()), labels...)
			default:
				t.Sample(name, m.GetUntyped().GetValue(), labels...)
			}
		}
		bw.Flush()
		out[name] = &rendered{help: mf.GetHelp(), typ: typ, lines: append([]byte(nil), buf.Bytes()...)}
	}
	return out
}

// WriteText implements TextCollector: the apps' series. A name two apps
// use with different types is served for the first (by machine id) only;
// the help text is the first one's.
func (s *AppScraper) WriteText(t *TextWriter, only string) {
	s.init()
	s.mu.Lock()
	res := make([]*scraped, 0, len(s.results))
	for _, r := range s.results {
		if only == "" || r.app == only {
			res = append(res, r)
		}
	}
	s.mu.Unlock()
	sort.Slice(res, func(i, j int) bool { return res[i].instance < res[j].instance })
	names := map[string]*rendered{}
	for _, r := range res {
		for name, f := range r.families {
			if names[name] == nil {
				names[name] = f
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		first := names[name]
		t.Family(name, first.help, first.typ)
		for _, r := range res {
			if f := r.families[name]; f != nil && f.typ == first.typ {
				t.w.Write(f.lines)
			}
		}
	}
}
