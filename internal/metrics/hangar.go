package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-dev/hangar/internal/store"
)

// Hangar holds Hangar's own series (hangar_*): what the daemon does, for
// which Fly has no series. Its methods are the hooks the supervisor, the
// deployer, the API and the store call; all are safe for concurrent use.
type Hangar struct {
	machineStart *prometheus.HistogramVec
	deploys      *prometheus.HistogramVec
	autostop     *prometheus.CounterVec
	api          *prometheus.HistogramVec
	storeWrite   *prometheus.HistogramVec
}

// durationBuckets are the buckets of Hangar's duration histograms, from
// a millisecond (a thaw) to two minutes (a deploy's wait_timeout).
var durationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NewHangar makes Hangar's own series and registers them with reg.
func NewHangar(reg prometheus.Registerer) *Hangar {
	h := &Hangar{
		machineStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hangar_machine_start_seconds",
			Help: "Time to start a machine until it is recorded started, by the state it started from (stopped, suspended, created, failed) and what asked (api, wake: the proxy for a request)."},
			[]string{LabelApp, "from", "trigger"}),
		deploys: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hangar_deploy_duration_seconds", Buckets: durationBuckets,
			Help: "Duration of deploys and scale operations, by strategy and outcome (complete, failed)."},
			[]string{LabelApp, "strategy", "outcome"}),
		autostop: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hangar_autostop_actions_count",
			Help: "Machines stopped or suspended by autostop."}, []string{LabelApp, "action"}),
		api: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hangar_api_request_duration_seconds", Buckets: durationBuckets,
			Help: "API requests by route pattern and status code."}, []string{"route", "status"}),
		storeWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hangar_store_write_seconds", Buckets: durationBuckets,
			Help: "Latency of state store writes (put, delete, txn), committed or not."}, []string{"op"}),
	}
	reg.MustRegister(h.machineStart, h.deploys, h.autostop, h.api, h.storeWrite)
	return h
}

// MachineStarted records a machine start (the supervisor's Observer).
// source is the event source: "fly-proxy" is a wake for a request.
func (h *Hangar) MachineStarted(app, from, source string, d time.Duration) {
	trigger := "api"
	if source == "fly-proxy" {
		trigger = "wake"
	} else if source == "flyd" {
		trigger = "restart"
	}
	h.machineStart.WithLabelValues(app, from, trigger).Observe(d.Seconds())
}

// Autostopped records an autostop action ("stop" or "suspend").
func (h *Hangar) Autostopped(app, action string) {
	h.autostop.WithLabelValues(app, action).Inc()
}

// DeployFinished records a finished deploy.
func (h *Hangar) DeployFinished(app, strategy, outcome string, d time.Duration) {
	h.deploys.WithLabelValues(app, strategy, outcome).Observe(d.Seconds())
}

// APIRequest records an API request by its route pattern.
func (h *Hangar) APIRequest(route string, status int, d time.Duration) {
	h.api.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
}

// Store wraps st so that its writes are timed. The optional capabilities
// of st (store.Leaser) are kept: the wrapper has them when st has them.
func (h *Hangar) Store(st store.Store) store.Store {
	t := &timedStore{Store: st, h: h.storeWrite}
	if l, ok := st.(store.Leaser); ok {
		return &timedLeaser{timedStore: t, l: l}
	}
	return t
}

// timedLeaser is a timedStore of a store.Leaser.
type timedLeaser struct {
	*timedStore
	l store.Leaser
}

func (s *timedLeaser) PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration) (store.LeasedKey, error) {
	return s.l.PutLeased(ctx, key, value, ttl)
}

type timedStore struct {
	store.Store
	h *prometheus.HistogramVec
}

func (s *timedStore) Put(ctx context.Context, key string, value []byte, expect int64) (int64, error) {
	t := time.Now()
	rev, err := s.Store.Put(ctx, key, value, expect)
	s.h.WithLabelValues("put").Observe(time.Since(t).Seconds())
	return rev, err
}

func (s *timedStore) Delete(ctx context.Context, key string, expect int64) (int64, error) {
	t := time.Now()
	rev, err := s.Store.Delete(ctx, key, expect)
	s.h.WithLabelValues("delete").Observe(time.Since(t).Seconds())
	return rev, err
}

func (s *timedStore) Txn(ctx context.Context, ops []store.Op) (int64, error) {
	t := time.Now()
	rev, err := s.Store.Txn(ctx, ops)
	s.h.WithLabelValues("txn").Observe(time.Since(t).Seconds())
	return rev, err
}
