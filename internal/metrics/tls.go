package metrics

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TLS counts the edge's TLS handshakes: fly_edge_tls_handshake_time_seconds
// {version} (from the ClientHello until the server has verified the
// connection) and fly_edge_tls_handshake_errors{servername}, each with
// the app of the SNI name. Wrap the listener's config, and pass the server's
// error log through Handler (net/http reports failed handshakes only
// there).
type TLS struct {
	appFor func(sni string) string
	time   *prometheus.HistogramVec
	errors *prometheus.CounterVec

	mu sync.Mutex // guards pending
	// pending maps a client address to the SNI name of its handshake,
	// for the error log line that names only the address; entries are
	// removed by that line, or swept after a minute.
	pending map[string]pendingHello
}

type pendingHello struct {
	sni  string
	when time.Time
}

// NewTLS makes the TLS series (registered with reg); appFor maps an SNI
// name to its app ("" if none).
func NewTLS(reg prometheus.Registerer, appFor func(sni string) string) *TLS {
	t := &TLS{appFor: appFor, pending: map[string]pendingHello{},
		time: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fly_edge_tls_handshake_time_seconds",
			Help: "Time of TLS handshakes with clients, from the ClientHello, by TLS version.", Buckets: durationBuckets},
			[]string{LabelApp, "version"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fly_edge_tls_handshake_errors",
			Help: "Failed TLS handshakes with clients, by SNI name."}, []string{LabelApp, "servername"}),
	}
	reg.MustRegister(t.time, t.errors)
	return t
}

// Wrap returns base with handshakes timed.
func (t *TLS) Wrap(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	inner := base.GetConfigForClient
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		start := time.Now()
		sni := strings.ToLower(hi.ServerName)
		addr := ""
		if hi.Conn != nil {
			addr = hi.Conn.RemoteAddr().String()
			t.mu.Lock()
			if len(t.pending) >= 1024 {
				for a, p := range t.pending {
					if start.Sub(p.when) > time.Minute {
						delete(t.pending, a)
					}
				}
			}
			t.pending[addr] = pendingHello{sni: sni, when: start}
			t.mu.Unlock()
		}
		var c *tls.Config
		if inner != nil {
			var err error
			if c, err = inner(hi); err != nil {
				return nil, err
			}
		}
		if c == nil {
			c = base.Clone()
			c.GetConfigForClient = nil
		}
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			t.time.WithLabelValues(t.appFor(sni), tls.VersionName(cs.Version)).Observe(time.Since(start).Seconds())
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		return c, nil
	}
	return cfg
}

// Handler passes an http.Server's error log on to next, counting the
// failed handshakes it reports ("http: TLS handshake error from ADDR: …").
func (t *TLS) Handler(next slog.Handler) slog.Handler { return &tlsLogHandler{next: next, t: t} }

type tlsLogHandler struct {
	next slog.Handler
	t    *TLS
}

func (h *tlsLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *tlsLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if _, rest, ok := strings.Cut(r.Message, "TLS handshake error from "); ok {
		addr, _, _ := strings.Cut(rest, ": ")
		h.t.mu.Lock()
		sni := h.t.pending[addr].sni
		delete(h.t.pending, addr)
		h.t.mu.Unlock()
		h.t.errors.WithLabelValues(h.t.appFor(sni), sni).Inc()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *tlsLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tlsLogHandler{next: h.next.WithAttrs(as), t: h.t}
}

func (h *tlsLogHandler) WithGroup(name string) slog.Handler {
	return &tlsLogHandler{next: h.next.WithGroup(name), t: h.t}
}
