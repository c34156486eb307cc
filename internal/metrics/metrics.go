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
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
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
	text   []TextCollector // written after the registry's series
}

// NewRegistry makes an empty registry for a daemon of region on host (Fly's
// 4-character host id; see HostID).
func NewRegistry(region, host string) *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), region: region, host: host}
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

// AddText adds a collector that writes its own text (the per-machine
// families). Its family names must be its own. Call it before serving.
func (r *Registry) AddText(c TextCollector) { r.text = append(r.text, c) }

// Gatherer gathers the series registered with Registerer (not the
// TextCollectors').
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// WriteText writes every series /metrics serves, only app's if only is
// not "": the registry's, then the TextCollectors'.
func (r *Registry) WriteText(w io.Writer, only string) error {
	var g prometheus.Gatherer = r.reg
	if only != "" {
		g = appOnly{g: r.reg, app: only}
	}
	mfs, gerr := g.Gather()
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := expfmt.NewEncoder(bw, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
	}
	t := newTextWriter(bw, r.region, r.host)
	for _, c := range r.text {
		c.WriteText(t, only)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return gerr
}

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
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, req *http.Request) {
		only := ""
		if authorize != nil {
			a, ok := authorize(req)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="hangar"`)
				http.Error(w, "hangar metrics: a token is needed (Authorization: Bearer <token>): an admin token, or an app's token for that app's series; `hangar tokens create` makes one", http.StatusUnauthorized)
				return
			}
			if !a.Admin {
				only = a.App
				if only == "" {
					http.Error(w, "hangar metrics: this token is for no app", http.StatusForbidden)
					return
				}
			}
		}
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		var out io.Writer = w
		if strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			defer gz.Close()
			out = gz
		}
		if err := r.WriteText(out, only); err != nil {
			// The answer has started: say so in the body, as promhttp's
			// ContinueOnError does with a log.
			fmt.Fprintf(out, "# hangar metrics: %v\n", err)
		}
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
