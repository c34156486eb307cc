// Package proxy is Hangar's edge proxy. It owns the routing state: which
// machines of which app may take requests, how many requests each has in
// flight, and which are draining. The supervisor tells it when a machine
// becomes routable, must drain, or is gone; because the choice of a machine
// and the count of its in-flight requests change under one lock, a machine
// that has started draining never receives another request.
package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// Backend is one machine's address for one app.
type Backend struct {
	App       string
	MachineID string
	Region    string
	Addr      string // host:port of the service's internal_port
}

type machine struct {
	b        Backend
	routable bool // started and checks passing
	draining bool
	inflight int
	idle     chan struct{} // closed when draining and inflight reaches 0
}

// Proxy routes HTTP requests for <app>.<domain> to the app's machines.
type Proxy struct {
	domain string
	region string
	log    *slog.Logger
	rp     *httputil.ReverseProxy

	mu   sync.Mutex // guards apps and every machine in it
	apps map[string]map[string]*machine
}

type ctxKey struct{}

// New returns a proxy serving apps at <app>.<domain>.
func New(domain, region string, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{domain: strings.ToLower(domain), region: region, log: log, apps: map[string]map[string]*machine{}}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     60 * time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Transport: &retryTransport{p: p, base: tr},
		Rewrite: func(pr *httputil.ProxyRequest) {
			m := pr.In.Context().Value(ctxKey{}).(*pick).m
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = m.b.Addr
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			clientIP, _, _ := net.SplitHostPort(pr.In.RemoteAddr)
			pr.Out.Header.Set("Fly-Client-IP", clientIP)
			pr.Out.Header.Set("Fly-Region", p.region)
			pr.Out.Header.Set("X-Forwarded-Proto", "http")
			if _, port, err := net.SplitHostPort(pr.In.Host); err == nil {
				pr.Out.Header.Set("X-Forwarded-Port", port)
			} else {
				pr.Out.Header.Set("X-Forwarded-Port", "80")
			}
			pr.Out.Header.Add("Via", "1.1 hangar")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			m := r.Context().Value(ctxKey{}).(*pick).m
			p.log.Warn("proxy error", "app", m.b.App, "machine", m.b.MachineID, "err", err)
			if errors.Is(err, context.Canceled) {
				return
			}
			http.Error(w, fmt.Sprintf("hangar proxy: machine %s of app %s did not answer: %v", m.b.MachineID, m.b.App, err), http.StatusBadGateway)
		},
	}
	return p
}

// SetBackend adds or updates a machine. routable says whether it may take
// new requests (started and its checks pass). A draining machine stays
// unroutable until Remove.
func (p *Proxy) SetBackend(b Backend, routable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := p.apps[b.App]
	if ms == nil {
		ms = map[string]*machine{}
		p.apps[b.App] = ms
	}
	m := ms[b.MachineID]
	if m == nil {
		m = &machine{}
		ms[b.MachineID] = m
	}
	m.b = b
	m.routable = routable
}

// Remove forgets a machine.
func (p *Proxy) Remove(app, machineID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ms := p.apps[app]; ms != nil {
		delete(ms, machineID)
		if len(ms) == 0 {
			delete(p.apps, app)
		}
	}
}

// Drain stops routing new requests to a machine and waits until its
// in-flight requests have finished or ctx ends.
func (p *Proxy) Drain(ctx context.Context, app, machineID string) error {
	p.mu.Lock()
	m := p.apps[app][machineID]
	if m == nil {
		p.mu.Unlock()
		return nil
	}
	m.routable = false
	if !m.draining {
		m.draining = true
		m.idle = make(chan struct{})
		if m.inflight == 0 {
			close(m.idle)
		}
	}
	idle := m.idle
	p.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain machine %s: %w", machineID, ctx.Err())
	}
}

// Routable reports the routable machines of an app (for status output).
func (p *Proxy) Routable(app string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id, m := range p.apps[app] {
		if m.routable && !m.draining {
			ids = append(ids, id)
		}
	}
	return ids
}

// pick chooses the least-loaded routable machine (ties at random) and
// counts the request against it.
func (p *Proxy) pick(app string) (*machine, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := p.apps[app]
	var best []*machine
	for _, m := range ms {
		if !m.routable || m.draining {
			continue
		}
		switch {
		case len(best) == 0 || m.inflight < best[0].inflight:
			best = append(best[:0], m)
		case m.inflight == best[0].inflight:
			best = append(best, m)
		}
	}
	if len(best) == 0 {
		return nil, len(ms)
	}
	m := best[0]
	if len(best) > 1 {
		m = best[mrand.IntN(len(best))]
	}
	m.inflight++
	return m, len(ms)
}

func (p *Proxy) release(m *machine) {
	p.mu.Lock()
	m.inflight--
	if m.draining && m.inflight == 0 {
		select {
		case <-m.idle:
		default:
			close(m.idle)
		}
	}
	p.mu.Unlock()
}

// AppForHost maps a Host header to an app name ("" if not ours).
func (p *Proxy) AppForHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	suffix := "." + p.domain
	if !strings.HasSuffix(host, suffix) {
		return ""
	}
	app := strings.TrimSuffix(host, suffix)
	if app == "" || strings.Contains(app, ".") {
		return ""
	}
	return app
}

func requestID(region string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-" + region
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Fly-Request-Id", requestID(p.region))
	w.Header().Set("Server", "Hangar")
	app := p.AppForHost(r.Host)
	if app == "" {
		http.Error(w, fmt.Sprintf("hangar proxy: no app is served at host %q; apps are served at <app>.%s", r.Host, p.domain), http.StatusNotFound)
		return
	}
	m, total := p.pick(app)
	if m == nil {
		msg := fmt.Sprintf("hangar proxy: app %s has no started machine with passing health checks (%d known)", app, total)
		if total == 0 {
			msg = fmt.Sprintf("hangar proxy: app %s has no machines; deploy it with `hangar deploy`", app)
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	pk := &pick{app: app, m: m}
	defer func() { p.release(pk.m) }()
	ctx := context.WithValue(r.Context(), ctxKey{}, pk)
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

// pick is the machine a request is counted against; a retry may move it.
type pick struct {
	app string
	m   *machine
}

// retryTransport retries a request whose connection to the machine was
// refused (nothing was sent, so it is safe for any request without a body)
// on the least-loaded routable machine, for up to retryWindow: a machine
// whose app is still binding its port, or one that just died, does not turn
// into an error for the client.
type retryTransport struct {
	p    *Proxy
	base http.RoundTripper
}

const retryWindow = 3 * time.Second

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	pk, _ := req.Context().Value(ctxKey{}).(*pick)
	deadline := time.Now().Add(retryWindow)
	backoff := 2 * time.Millisecond
	for {
		resp, err := t.base.RoundTrip(req)
		if err == nil || pk == nil || !isRefused(err) || (req.Body != nil && req.Body != http.NoBody) || time.Now().After(deadline) {
			return resp, err
		}
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(backoff):
		}
		if backoff < 100*time.Millisecond {
			backoff *= 2
		}
		next, _ := t.p.pick(pk.app)
		if next == nil {
			return nil, err
		}
		t.p.release(pk.m)
		pk.m = next
		req.URL.Host = next.b.Addr
	}
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
