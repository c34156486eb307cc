package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hangar-dev/hangar/internal/api"
	"github.com/hangar-dev/hangar/internal/auth"
	"github.com/hangar-dev/hangar/internal/metrics"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// metricsSources are what the metrics collectors read.
type metricsSources struct {
	st      store.Store
	sup     *supervisor.Supervisor
	px      *proxy.Proxy
	vols    *volume.Manager
	history *metrics.History // recorded from here on
	region  string
	log     *slog.Logger
	// the app metrics scraper's (0: its defaults)
	interval, timeout time.Duration
}

// serveMetrics registers the collectors, starts the app metrics scraper
// and the load average sampler (until ctx ends), and serves /metrics on
// ln; a serve error goes to errc.
func serveMetrics(ctx context.Context, ln net.Listener, reg *metrics.Registry, src metricsSources, errc chan<- error) *http.Server {
	r := reg.Registerer()
	reg.AddText(metrics.NewProxyCollector(src.px.Stats))
	ic := metrics.NewInstanceCollector(src.instances, metrics.HostCgroupFS())
	reg.AddText(ic)
	r.MustRegister(metrics.NewVolumeCollector(src.volumes))
	scraper := &metrics.AppScraper{List: src.instances, Region: src.region, Host: metrics.HostID(hostname()), Log: src.log.With("component", "metrics"),
		Interval: src.interval, Timeout: src.timeout}
	r.MustRegister(scraper.Collectors()...)
	reg.AddText(scraper)
	go ic.Run(ctx)
	go scraper.Run(ctx)
	// The last hour of a few series per app, in memory, for the web
	// dashboard (GET /v1/apps/{app}/metrics).
	src.history.Instances = ic
	src.history.Volumes = src.volumes
	go src.history.Run(ctx)
	var authorize metrics.Authorizer
	if !isLoopback(ln.Addr()) {
		authorize = metricsAuthorizer(src.st)
	}
	srv := &http.Server{Handler: reg.Handler(authorize), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return srv
}

// metricsAuthorizer accepts the daemon's API tokens on /metrics: an app's
// token sees its app's series, an org (admin) token every series.
func metricsAuthorizer(st store.Store) metrics.Authorizer {
	return func(req *http.Request) (metrics.Access, bool) {
		plain := metrics.BearerToken(req)
		if plain == "" {
			return metrics.Access{}, false
		}
		tok, err := auth.Verify(req.Context(), st, plain)
		if err != nil {
			return metrics.Access{}, false
		}
		if tok.Scope == auth.ScopeApp {
			return metrics.Access{App: tok.App}, true
		}
		return metrics.Access{Admin: true}, true
	}
}

// apiHistory is the API's view of the history (a nil interface when
// metrics are off).
func apiHistory(h *metrics.History) api.History {
	if h == nil {
		return nil
	}
	return h
}

// isLoopback reports whether a listener is on a loopback address only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// instances lists the machines for the instance series and the scraper.
func (s metricsSources) instances(ctx context.Context) ([]metrics.Instance, error) {
	recs, err := s.sup.List(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Instance, 0, len(recs))
	for _, r := range recs {
		if r.State == types.StateDestroyed || r.State == types.StateDestroying {
			continue
		}
		in := metrics.Instance{App: r.App, ID: r.ID, Region: r.Region, Running: r.State == types.StateStarted, Addr: r.IPv4}
		if in.Addr == "" {
			in.Addr = r.PrivateIP
		}
		if c := r.Config; c != nil {
			in.ProcessGroup = c.Metadata[types.MetaProcessGroup]
			in.Metrics = c.Metrics
			if c.Guest != nil {
				in.CPUs, in.MemoryMB = c.Guest.CPUs, c.Guest.MemoryMB
			}
			for _, m := range c.Mounts {
				in.Mounts = append(in.Mounts, m.Path)
			}
		}
		in.LastExit, in.Down = lastExit(r)
		out = append(out, in)
	}
	return out, nil
}

// lastExit is a machine's last exit, and whether it is down because of it
// (stopped or failed after an exit or a start no one asked to end).
func lastExit(r *supervisor.Record) (*metrics.Exit, bool) {
	var ex *metrics.Exit
	down := r.State == types.StateFailed
	for i, e := range r.Events { // newest first
		if e.Type != "exit" {
			continue
		}
		ev, _ := e.Request["exit_event"].(map[string]interface{})
		ex = &metrics.Exit{}
		if code, ok := ev["exit_code"].(float64); ok {
			ex.Code = int(code)
		} else if code, ok := ev["exit_code"].(int); ok {
			ex.Code = code
		}
		ex.OOM, _ = ev["oom_killed"].(bool)
		// Down if this exit is the machine's last event and it did not
		// restart.
		restarting, _ := ev["restarting"].(bool)
		if i == 0 && r.State == types.StateStopped && !restarting {
			down = true
		}
		break
	}
	return ex, down
}

// volumes lists the volumes for the volume series.
func (s metricsSources) volumes(ctx context.Context) ([]metrics.Volume, error) {
	vols, err := s.vols.List(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Volume, 0, len(vols))
	for _, v := range vols {
		size := int64(v.SizeMB) << 20
		if size == 0 {
			size = int64(v.SizeGB) << 30
		}
		out = append(out, metrics.Volume{ID: v.ID, App: v.App, SizeBytes: size,
			Blocks: uint64(v.Blocks), BlocksFree: uint64(v.BlocksFree), BlocksAvail: uint64(v.BlocksAvail)})
	}
	return out, nil
}

// hostname is this host's name ("" if unknown).
func hostname() string {
	h, _ := os.Hostname()
	return h
}
