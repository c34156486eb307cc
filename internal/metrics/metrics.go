// Package metrics serves Hangar's Prometheus metrics: Fly's series
// (fly_edge_*, fly_app_*, fly_instance_*, fly_volume_*) with Fly's names,
// types and labels, Hangar's own (hangar_*), and the apps' own metrics
// ([metrics] in fly.toml) scraped from their machines and re-exposed with
// the app, instance and region labels added. It owns the registry: other
// packages hand their client_golang collectors to Registry.Registerer.
//
// Nothing here runs on a request's path: the proxy keeps its own counters
// (atomic adds on pre-resolved per-app and per-machine structures) and
// this package reads a snapshot of them when Prometheus scrapes
// (Proxy.Stats). Instance and volume series are read from the machines'
// cgroups, /proc and the volumes' file systems at scrape time too.
package metrics

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Standard labels, as Fly names them.
const (
	LabelApp      = "app"
	LabelRegion   = "region"
	LabelHost     = "host"
	LabelInstance = "instance"
)

// Registry is the daemon's metrics registry. Every series it serves
// carries the region and host labels (constant for the daemon).
type Registry struct {
	reg    *prometheus.Registry
	region string
	host   string
	more   prometheus.Gatherers // the registry, then AddGatherer's
}

// NewRegistry makes an empty registry for a daemon of region on host (Fly's
// 4-character host id; see HostID).
func NewRegistry(region, host string) *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), region: region, host: host}
	r.more = prometheus.Gatherers{r.reg}
	// The daemon's process, under hangar_ (go_* names are left to the
	// apps, whose Go runtimes' series are re-exposed as they are).
	r.Registerer().MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "hangar"}))
	return r
}

// Registerer is where other packages register their collectors (the log
// shipper's counters, …). Their series get the region and host labels.
func (r *Registry) Registerer() prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{LabelRegion: r.region, LabelHost: r.host}, r.reg)
}

// AddGatherer adds series gathered by g (the apps' own metrics) to what
// /metrics serves; g labels them itself. Call it before serving.
func (r *Registry) AddGatherer(g prometheus.Gatherer) { r.more = append(r.more, g) }

// Gatherer gathers every series /metrics serves.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.more }

// Access says who asked for /metrics: Admin sees everything, an app token
// only its app's series (App).
type Access struct {
	Admin bool
	App   string
}

// Authorizer decides who a request is; ok false refuses it.
type Authorizer func(r *http.Request) (a Access, ok bool)

// Handler serves /metrics in Prometheus's text format. authorize nil
// serves everything to anyone (the loopback listener); otherwise a
// request needs a token: an admin token gets every series, an app's token
// only the series labelled with its app.
func (r *Registry) Handler(authorize Authorizer) http.Handler {
	mux := http.NewServeMux()
	full := promhttp.HandlerFor(r.more, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, req *http.Request) {
		if authorize == nil {
			full.ServeHTTP(w, req)
			return
		}
		a, ok := authorize(req)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hangar"`)
			http.Error(w, "hangar metrics: a token is needed (Authorization: Bearer <token>): an admin token, or an app's token for that app's series; `hangar tokens create` makes one", http.StatusUnauthorized)
			return
		}
		if a.Admin {
			full.ServeHTTP(w, req)
			return
		}
		promhttp.HandlerFor(appOnly{g: r.more, app: a.App}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, req)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "hangar metrics: the series are at /metrics", http.StatusNotFound)
	})
	return mux
}

// appOnly gathers only the series of one app.
type appOnly struct {
	g   prometheus.Gatherer
	app string
}

func (a appOnly) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := a.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		ms := mf.Metric[:0]
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == LabelApp && l.GetValue() == a.app {
					ms = append(ms, m)
					break
				}
			}
		}
		if len(ms) > 0 {
			mf.Metric = ms
			out = append(out, mf)
		}
	}
	return out, err
}

// BearerToken is the token of an "Authorization: Bearer" header ("" if none).
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// HostID is Fly's 4-character lowercase hexadecimal host id, derived from
// the host name.
func HostID(hostname string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(hostname); i++ {
		h ^= uint32(hostname[i])
		h *= 16777619
	}
	return fmt.Sprintf("%04x", h&0xffff)
}
