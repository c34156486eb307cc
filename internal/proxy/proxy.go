// Package proxy is Hangar's edge proxy. It owns the routing state: which
// machines of which app may take requests, how many requests each has in
// flight, which are draining, and the requests waiting for capacity. The
// supervisor tells it when a machine becomes routable, must drain, or is
// gone; because the choice of a machine and the count of its in-flight
// requests change under one lock, a machine that has started draining never
// receives another request.
//
// Load balancing follows Fly's proxy: the least-loaded routable machine,
// preferring machines under their soft_limit and in the nearest region,
// never one at its hard_limit, ties at random. When every machine is at its
// hard_limit a request waits in a bounded queue; when an app has no running
// capacity the proxy asks its Waker to start or resume a machine and holds
// the request until that machine is routable (see wake.go).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/flyreplay"
	"github.com/hangar-dev/hangar/internal/h2backend"
	"github.com/hangar-dev/hangar/internal/types"
)

// Backend is one machine's address for one app, as the supervisor hands
// it over (types.Backend).
type Backend = types.Backend

// DefaultSoftLimit is Fly's soft_limit when a service sets none.
const DefaultSoftLimit = types.DefaultSoftLimit

type machine struct {
	b           Backend
	soft        int // soft_limit (> 0)
	hard        int // hard_limit, 0 = none
	pristine    bool
	respHdrs    []respHeader
	h2          bool                 // http_options.h2_backend: h2c to the machine
	idleTimeout time.Duration        // http_options.idle_timeout of its connections
	ws          map[*wsConn]struct{} // upgraded WebSocket connections

	routable bool // started and checks passing
	draining bool
	inflight int
	// routableSince is when the machine last became routable; lastUsed
	// when a request last started or ended on it (autostop reads both).
	routableSince time.Time
	lastUsed      time.Time
	served        uint64        // requests ever routed here (metrics)
	idle          chan struct{} // closed when draining and inflight reaches 0
	present       bool          // known to the proxy (false once removed)
	pool          []*bconn      // idle keep-alive connections to the machine
	stats         *machineStats // counters for metrics (metrics.go), never nil

	// Another host's machine (remote.go): its host, whether the entry
	// stands for the host's machines to wake rather than one machine,
	// and the requests in flight its host published.
	remote   *remoteHost
	wakeOnly bool
	rload    int
	rdown    []string // the RouteKeys of its services that are down (RemoteMachine.Down)
	// confGen counts the configs SetBackend was given (published, so
	// other hosts re-read the app's settings when it changes).
	confGen int
}

// app is the routing state of one app. Guarded by Proxy.mu.
type app struct {
	name     string
	machines []*machine
	remote   []*machine // other hosts' machines (remote.go)
	// waiters counts requests waiting for capacity (hard_limit queue or a
	// wake); changed is closed and replaced when capacity may have appeared
	// and someone waits.
	waiters int
	changed chan struct{}
	// waking is set while a Waker call is running for the app; wakeErr is
	// the error of the last one (nil once it succeeded).
	waking    bool
	wakeErr   error
	wakeGen   int // bumps when a wake finishes
	stats     *appStats
	lastScale time.Time // last wake started because every machine was over soft_limit
}

// Proxy routes HTTP requests for <app>.<domain> to the app's machines.
// Set the exported fields before serving.
type Proxy struct {
	// Waker starts or resumes machines of an app that has no running
	// capacity (autostart). Nil: no autostart.
	Waker Waker
	// QueueTimeout bounds how long a request waits for a machine under
	// its hard_limit; QueueLimit bounds how many wait per app. After
	// either, the request gets 503.
	QueueTimeout time.Duration
	QueueLimit   int
	// WakeTimeout bounds how long a request is held while a stopped or
	// suspended machine starts and passes its checks.
	WakeTimeout time.Duration
	// MaxBodyBytes limits request bodies (413 above it); 0 means no limit.
	MaxBodyBytes int64
	// Port is the public port reported in X-Forwarded-Port and
	// Fly-Forwarded-Port ("80" if unset).
	Port string
	// FallbackPrefixes are request paths that Serve always hands to the
	// fallback server's handler instead of the fast path: by default the
	// ACME HTTP-01 challenge path, which the certificate manager wraps
	// around the proxy.
	FallbackPrefixes []string
	// HostApp maps a host that is not <app>.<domain> to an app (custom
	// hostnames with certificates); "" if none. Nil: only <app>.<domain>.
	HostApp func(host string) string
	// HTTPSPort is the HTTPS listener's public port: force_https
	// redirects there, and it is the X-Forwarded-Port of HTTPS requests.
	HTTPSPort string
	// StaticsRoot returns the unpacked root filesystem of an image, for
	// [[statics]]. Nil: statics are not served.
	StaticsRoot func(ctx context.Context, image string) (string, error)
	// FirstByteTimeout bounds how long a new client connection of Serve
	// may stay silent (default: the fallback server's ReadHeaderTimeout,
	// never more than its IdleTimeout).
	FirstByteTimeout time.Duration
	// MaxConns and MaxConnsPerIP bound Serve's open client connections,
	// in all and per client address; a connection over either gets 503
	// and is closed (see conns.go). 0: no limit.
	MaxConns, MaxConnsPerIP int
	// NoStats turns off the per-request counters that Stats reports (the
	// metrics exporter's source): `hangar server --metrics-listen ""`.
	NoStats bool

	domain string
	region string
	log    *slog.Logger
	rp     *httputil.ReverseProxy

	baseTr *http.Transport

	mu      sync.Mutex // guards apps and every app and machine in it, confs, replays
	apps    map[string]*app
	confs   map[string]*appConf // apps' settings from their latest machine config
	replays map[string]bool     // apps that ever answered with fly-replay
	// slow is the set of apps whose requests the fast path hands to
	// ServeHTTP (rebuilt under mu, read without it).
	slow  atomic.Pointer[map[string]bool]
	svcCh chan struct{} // ServicesChanged

	subMu   sync.Mutex // guards svcSubs
	svcSubs map[chan struct{}]struct{}

	statMu sync.Mutex // guards stat
	stat   map[string]*staticsEntry
	trMu   sync.Mutex // guards trs
	trs    map[trKey]http.RoundTripper

	down      atomic.Bool // set by Shutdown
	srvMu     sync.Mutex  // guards the fields below (fast path servers)
	shutdown  bool
	listeners []net.Listener
	fallbacks []*http.Server
	conns     map[*fconn]struct{} // connections on the fast path
	open      int                 // connections counted against MaxConns (fast path and handed over)
	perIP     map[string]int      // open per client address

	limits connLimits // refusals, for metrics and the log

	// The edge across hosts (remote.go), guarded by mu.
	edge      EdgeOptions
	rhosts    map[string]*remoteHost
	localWake map[string]bool // apps with a machine this host can wake
	hopFields

	backendIdle time.Duration // idleConnTTL; tests shorten it
	janitor     sync.Once     // starts closeIdleBackends
	connPeak    connPeaks     // client connections at their peak (releaseMemory; guarded by srvMu)
	parker      parker        // parked idle connections (park.go)
	parkedN     atomic.Int64  // how many are parked
	openN       atomic.Int64  // open client connections (the limits' count; read without srvMu)
	stopped     chan struct{} // closed by Shutdown
}

type ctxKey struct{}

// New returns a proxy serving apps at <app>.<domain>.
func New(domain, region string, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	p := &Proxy{
		QueueTimeout:     10 * time.Second,
		QueueLimit:       512,
		WakeTimeout:      60 * time.Second,
		MaxBodyBytes:     1 << 30,
		MaxConns:         DefaultMaxConns,
		MaxConnsPerIP:    DefaultMaxConnsPerIP,
		FallbackPrefixes: []string{"/.well-known/acme-challenge/"},
		domain:           strings.ToLower(domain),
		region:           region,
		log:              log,
		apps:             map[string]*app{},
		svcCh:            make(chan struct{}, 1),
		backendIdle:      idleConnTTL,
		stopped:          make(chan struct{}),
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         p.dialMachine,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     60 * time.Second,
		// The app's response is passed on as it is; asking for gzip
		// would make the proxy decompress it.
		DisableCompression: true,
	}
	p.baseTr = tr
	p.rp = &httputil.ReverseProxy{
		Transport: &flyreplay.Transport{
			Base:     &retryTransport{p: p, base: machineTransport{p}},
			Replayer: &flyreplay.Replayer{Target: replayTarget{p}, Log: func(f string, args ...any) { log.Info(fmt.Sprintf(f, args...)) }},
			From:     replayFrom,
		},
		// Every write is flushed: SSE, chunked streams and gRPC messages
		// reach the client at once.
		FlushInterval:  -1,
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p
}

// SetBackend adds or updates a machine. routable says whether it may take
// new requests (started and its checks pass). A draining machine stays
// unroutable until Remove. Empty Addr, Region or Service keep the values
// the machine had.
func (p *Proxy) SetBackend(b Backend, routable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.appLocked(b.App)
	var m *machine
	for _, x := range a.machines {
		if x.b.MachineID == b.MachineID {
			m = x
		}
	}
	if m == nil {
		m = &machine{soft: DefaultSoftLimit, stats: &machineStats{}}
		a.machines = append(a.machines, m)
	}
	if b.Addr == "" {
		b.Addr = m.b.Addr
	}
	if b.Region == "" {
		b.Region = m.b.Region
	}
	if b.Service == nil {
		b.Service = m.b.Service
	}
	if b.Config == nil {
		b.Config = m.b.Config
	} else {
		m.confGen++
		p.setConfLocked(b.App, confFrom(b.Config, b.Service))
	}
	if m.b.Addr != b.Addr {
		closePoolLocked(m)
	}
	m.b = b
	m.present = true
	m.soft, m.hard = b.Service.Limits()
	m.pristine, m.respHdrs = responseOptions(b.Service)
	m.h2, m.idleTimeout = backendOptions(b.Service)
	was := m.routable
	m.routable = routable && !m.draining
	if m.routable && !was {
		m.routableSince = time.Now()
	}
	if m.routable {
		p.notifyLocked(a)
	} else {
		// Not routable: crashed, failing checks or stopping. Its pooled
		// connections may be dead by the time it returns.
		closePoolLocked(m)
	}
}

func (p *Proxy) appLocked(name string) *app {
	a := p.apps[name]
	if a == nil {
		a = &app{name: name, changed: make(chan struct{}), stats: newAppStats()}
		p.apps[name] = a
	}
	return a
}

// notifyLocked wakes the requests waiting for capacity of a, if any.
func (p *Proxy) notifyLocked(a *app) {
	if a.waiters > 0 {
		close(a.changed)
		a.changed = make(chan struct{})
	}
}

// Remove forgets a machine. Its in-flight requests still finish.
func (p *Proxy) Remove(appName, machineID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[appName]
	if a == nil {
		return
	}
	for i, m := range a.machines {
		if m.b.MachineID == machineID {
			m.routable = false
			m.present = false
			closePoolLocked(m)
			a.machines = append(a.machines[:i:i], a.machines[i+1:]...)
			break
		}
	}
	p.notifyLocked(a) // waiters re-evaluate: perhaps nothing is left to wait for
}

// Drain stops routing new requests to a machine and waits until its
// in-flight requests have finished or ctx ends.
func (p *Proxy) Drain(ctx context.Context, appName, machineID string) error {
	p.mu.Lock()
	m := p.machineLocked(appName, machineID)
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
	ws := make([]*wsConn, 0, len(m.ws))
	for w := range m.ws {
		ws = append(ws, w)
	}
	p.mu.Unlock()
	for _, w := range ws {
		w.goAway()
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain machine %s of app %s: %w", machineID, appName, ctx.Err())
	}
}

func (p *Proxy) machineLocked(appName, machineID string) *machine {
	if a := p.apps[appName]; a != nil {
		for _, m := range a.machines {
			if m.b.MachineID == machineID {
				return m
			}
		}
	}
	return nil
}

// Routable reports the routable machines of an app (for status output).
func (p *Proxy) Routable(appName string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	if a := p.apps[appName]; a != nil {
		for _, m := range a.machines {
			if m.routable && !m.draining {
				ids = append(ids, m.b.MachineID)
			}
		}
	}
	return ids
}

// Load reports a machine's in-flight requests and whether it takes
// traffic now (known, routable, not draining).
func (p *Proxy) Load(appName, machineID string) (int, bool) {
	l := p.Traffic(appName, machineID)
	return l.Inflight, l.Routable
}

// Traffic reports a machine's traffic: requests in flight, whether it
// takes traffic now (known, routable, not draining), since when, and when
// a request last started or ended on it. The autostop rule reads it.
func (p *Proxy) Traffic(appName, machineID string) types.MachineLoad {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.machineLocked(appName, machineID)
	if m == nil {
		return types.MachineLoad{}
	}
	l := types.MachineLoad{Inflight: m.inflight, Routable: m.routable && !m.draining, LastRequest: m.lastUsed}
	if l.Routable {
		l.RoutableSince = m.routableSince
	}
	return l
}

func (p *Proxy) release(a *app, m *machine) {
	p.mu.Lock()
	m.inflight--
	m.lastUsed = time.Now()
	if m.draining && m.inflight == 0 {
		select {
		case <-m.idle:
		default:
			close(m.idle)
		}
	}
	p.notifyLocked(a)
	p.mu.Unlock()
}

// AppForHost maps a Host header to an app name ("" if not ours).
func (p *Proxy) AppForHost(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) <= len(p.domain)+1 || host[len(host)-len(p.domain)-1] != '.' || !strings.EqualFold(host[len(host)-len(p.domain):], p.domain) {
		return ""
	}
	name := host[:len(host)-len(p.domain)-1]
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			return "" // dots, and anything that cannot be an app name
		}
	}
	if upper {
		return strings.ToLower(name)
	}
	return name
}

// appFor maps a request's Host to an app: <app>.<domain>, else a custom
// hostname through HostApp.
func (p *Proxy) appFor(host string) string {
	if name := p.AppForHost(host); name != "" {
		return name
	}
	if p.HostApp != nil && host != "" {
		return p.HostApp(host)
	}
	return ""
}

// request is the state of one proxied request, carried in its context.
type request struct {
	app     *app
	m       *machine // the machine it is counted against; a retry may move it
	id      string   // Fly-Request-Id
	prefs   routing
	status  int
	started time.Time
	replay  []held // machines picked for fly-replay, not yet sent to
	retried bool   // moved once after a connection error to another host
}

// ServeHTTP implements http.Handler: force_https and [[statics]], then the
// app; with http_options.compress the response is compressed for the
// client (compress.go).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := types.ListenerApp(r.Context())
	if !ok {
		name = p.appFor(r.Host)
	}
	var c *appConf
	if name != "" {
		c = p.conf(name)
		p.countConn(r.Context(), name)
	}
	if c != nil && c.compress {
		if cw := newCompressWriter(w, r); cw != nil {
			p.serveWith(cw, r, name, c)
			// Not reached when the handler panics (the reverse proxy's
			// ErrAbortHandler): a response cut off stays cut off.
			cw.finish()
			return
		}
	}
	p.serveWith(w, r, name, c)
}

// serveWith serves a request for app name, whose settings are c (nil if
// unknown).
func (p *Proxy) serveWith(w http.ResponseWriter, r *http.Request, name string, c *appConf) {
	if c != nil {
		// Flycast is plain HTTP inside the private network: force_https
		// does not apply to it, as on Fly.
		if !types.PrivateListener(r.Context()) && p.forceHTTPS(w, r, c) {
			p.record(name, http.StatusMovedPermanently, time.Now())
			return
		}
		if len(c.statics) > 0 && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if h := p.staticsHandler(r.Context(), name, c); h != nil {
				if _, _, ok := h.Match(r.URL.Path); ok {
					h.ServeHTTP(w, r) // misses go on to the app (Next)
					return
				}
			}
		}
	}
	p.serveApp(w, r, name)
}

// serveApp proxies a request to a machine of app name.
func (p *Proxy) serveApp(w http.ResponseWriter, r *http.Request, name string) {
	start := time.Now()
	rid := requestID(p.region)
	if name == "" {
		p.fail(w, rid, http.StatusNotFound, fmt.Sprintf("hangar proxy: no app is served at host %q; apps are served at <app>.%s", r.Host, p.domain))
		return
	}
	prefs, err := parseRouting(r.Header)
	if err != nil {
		p.fail(w, rid, http.StatusBadRequest, "hangar proxy: "+err.Error())
		p.record(name, http.StatusBadRequest, start)
		return
	}
	if p.MaxBodyBytes > 0 && r.ContentLength > p.MaxBodyBytes {
		p.fail(w, rid, http.StatusRequestEntityTooLarge, fmt.Sprintf("hangar proxy: request body of %d bytes is over the limit of %d bytes", r.ContentLength, p.MaxBodyBytes))
		p.record(name, http.StatusRequestEntityTooLarge, start)
		return
	}
	a, m, code, msg := p.acquire(r.Context(), name, prefs)
	if m == nil {
		if code != 0 {
			p.fail(w, rid, code, msg)
			p.record(name, code, start)
		}
		return
	}
	if p.MaxBodyBytes > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, p.MaxBodyBytes)
	}
	rq := &request{app: a, m: m, id: rid, prefs: prefs, started: start}
	// The header rules of headers.go: a Connection header may not make
	// net/http drop end-to-end headers.
	sanitizeConnection(r.Header)
	p.rp.ServeHTTP(h2backend.TrailersOnlySafe(w), r.WithContext(context.WithValue(r.Context(), ctxKey{}, rq)))
	p.release(a, rq.m)
	for _, h := range rq.replay {
		p.release(h.a, h.m) // picked for a fly-replay that was not sent
	}
	if !p.NoStats {
		d := time.Since(start)
		a.stats.observe(rq.status, d)
		rq.m.stats.observe(rq.status, d)
	}
}

// fail answers with an error of the proxy itself.
func (p *Proxy) fail(w http.ResponseWriter, rid string, code int, msg string) {
	h := w.Header()
	h.Set("Fly-Request-Id", rid)
	h.Set("Server", serverName)
	http.Error(w, msg, code)
}

func (p *Proxy) record(name string, code int, start time.Time) {
	p.mu.Lock()
	a := p.apps[name]
	p.mu.Unlock()
	if a != nil && !p.NoStats {
		a.stats.observe(code, time.Since(start))
	}
}

const serverName = "Hangar"

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	rq := pr.In.Context().Value(ctxKey{}).(*request)
	out := pr.Out
	out.Host = pr.In.Host
	h := out.Header
	clientIP, _, _ := net.SplitHostPort(pr.In.RemoteAddr)
	port := p.Port
	if port == "" {
		port = "80"
	}
	if pr.In.TLS != nil {
		port = p.HTTPSPort
		if port == "" {
			port = "443"
		}
	}
	if types.PrivateListener(pr.In.Context()) {
		// A Flycast listener: the port the machine called.
		if la, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if _, lp, err := net.SplitHostPort(la.String()); err == nil {
				port = lp
			}
		}
	}
	f := forwarded{clientIP: clientIP, tls: pr.In.TLS != nil, port: port, region: p.region, requestID: rq.id, via: viaValue(pr.In)}
	// X-Forwarded-For and Via keep the chains the client sent.
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
		f.priorXFF = []byte(strings.Join(prior, ", "))
	}
	if prior := pr.In.Header["Via"]; len(prior) > 0 {
		f.priorVia = []byte(strings.Join(prior, ", "))
	}
	// What the client sent under the names of the headers the proxy owns
	// (forwarded and routing headers) does not reach the app; net/http
	// already dropped the hop-by-hop ones and those the Connection header
	// names.
	for k := range h {
		if proxyOwned.hasString(k) {
			delete(h, k)
		}
	}
	f.each(func(name, value string) { h[name] = []string{value} })
	p.target(out, rq.m, rq.prefs)
}

func viaValue(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "2 hangar"
	}
	return "1.1 hangar"
}

func (p *Proxy) modifyResponse(resp *http.Response) error {
	rq := resp.Request.Context().Value(ctxKey{}).(*request)
	rq.status = resp.StatusCode
	m := rq.m
	if isWebSocket(resp) {
		p.trackWebSocket(resp, m)
	}
	if m.pristine {
		return nil
	}
	h := resp.Header
	h["Fly-Request-Id"] = []string{rq.id}
	h["Server"] = []string{serverName}
	if via := h["Via"]; len(via) > 0 {
		h["Via"] = []string{strings.Join(via, ", ") + ", 1.1 hangar"}
	} else {
		h["Via"] = []string{"1.1 hangar"}
	}
	for _, rh := range m.respHdrs {
		if rh.remove {
			delete(h, rh.name)
		} else {
			h[rh.name] = rh.values
		}
	}
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	rq := r.Context().Value(ctxKey{}).(*request)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		rq.status = http.StatusRequestEntityTooLarge
		p.fail(w, rq.id, rq.status, fmt.Sprintf("hangar proxy: request body is over the limit of %d bytes", mbe.Limit))
		return
	case errors.Is(err, context.Canceled):
		rq.status = 499 // the client went away
		return
	case errors.Is(err, flyreplay.ErrTooLarge), errors.Is(err, flyreplay.ErrTooManyHops), errors.Is(err, flyreplay.ErrNoTarget), errors.Is(err, flyreplay.ErrInvalid):
		rq.status = flyreplay.StatusOf(err)
		p.fail(w, rq.id, rq.status, "hangar proxy: "+err.Error())
		return
	}
	p.log.Warn("proxy error", "app", rq.m.b.App, "machine", rq.m.b.MachineID, "err", err)
	rq.status = http.StatusBadGateway
	p.fail(w, rq.id, rq.status, fmt.Sprintf("hangar proxy: machine %s of app %s did not answer: %v", rq.m.b.MachineID, rq.m.b.App, err))
}

// retryTransport retries a request whose connection to the machine was
// refused or reset before any byte of the request was written (so it is
// safe for any request without a body) on the least-loaded routable
// machine, for up to retryWindow: a machine whose app is still binding its
// port, or one that just died, does not turn into an error for the client.
type retryTransport struct {
	p    *Proxy
	base http.RoundTripper
}

const retryWindow = 3 * time.Second

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rq, _ := req.Context().Value(ctxKey{}).(*request)
	var deadline time.Time
	backoff := time.Millisecond
	for {
		resp, err := t.base.RoundTrip(req)
		if err != nil && rq != nil && t.p.remoteFailed(rq, req, err) {
			continue
		}
		if err == nil || rq == nil || !retryable(err) || (req.Body != nil && req.Body != http.NoBody) {
			return resp, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(retryWindow)
		} else if time.Now().After(deadline) {
			return resp, err
		}
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = nextBackoff(backoff, deadline)
		next := t.p.repick(rq)
		if next == nil {
			return nil, err
		}
		t.p.target(req, next, rq.prefs)
	}
}

// nextBackoff is the wait before the next dial of a refused connection:
// 1ms for the first 100ms (a machine just started or resumed binds its
// port within milliseconds, and a refused dial costs microseconds), then
// doubling up to 100ms.
func nextBackoff(cur time.Duration, deadline time.Time) time.Duration {
	if time.Until(deadline) > retryWindow-100*time.Millisecond {
		return time.Millisecond
	}
	return min(2*cur, 100*time.Millisecond)
}

// retryable reports errors where the request cannot have reached the app:
// the dial was refused or reset. (A pooled keep-alive connection that the
// machine closed before the request was written is retried by net/http
// itself.)
func retryable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

type bufferPool struct{}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(bufPool.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { bufPool.Put(&b) }
