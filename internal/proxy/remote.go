package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/h2backend"
	"github.com/hangar-dev/hangar/internal/types"
)

// The edge across hosts (docs/edge.md). Every host's proxy also knows the
// machines of the other hosts of a cluster (SetEdgeHost, from what each
// host publishes in the shared state) and routes a request to one of them
// when it is the best choice (balance.go: this host, then this region,
// then the nearest region). Such a request is not sent to the machine: it
// is forwarded to the proxy of the machine's host, pinned to the machine
// chosen: on the mesh as plain HTTP/1.1 to that host's hop listener
// (hop.go), else to its edge listener (mutual TLS with the cluster's host
// certificates). That proxy (ServeEdge) routes it
// only to its own machines, so a forwarded request is never forwarded
// again; it applies the machine's hard_limit (so the limit holds whatever
// edge a request entered) and wakes a stopped machine when it has to.

// Distance is how far another host is from this one (its measured
// round-trip time); false when it is not known.
type Distance interface {
	Distance(hostID string) (time.Duration, bool)
}

// EdgeOptions turn on routing to other hosts' machines (SetEdge).
type EdgeOptions struct {
	// Host is this host's id: its own record (SetEdgeHost) only tells the
	// proxy which of its apps have a machine to wake.
	Host string
	// Distance ranks the regions of other hosts. Nil: this region first,
	// then every other region alike.
	Distance Distance
	// Transport carries forwarded requests to other hosts' edge listeners
	// (https, with this host's certificate).
	Transport http.RoundTripper
	// UpgradeTransport carries forwarded protocol upgrades (WebSocket):
	// HTTP/1.1 over TLS, as an upgrade cannot ride an HTTP/2 stream.
	// Nil: Transport.
	UpgradeTransport http.RoundTripper
	// Dial connects to another host's edge listener (TLS, HTTP/1.1), for
	// raw TCP services (remote_tcp.go). Nil: raw TCP connections go to
	// this host's machines only.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// DownFor is how long a host whose connection failed gets no request
	// from this edge (default 5 s); its lease ends it for good.
	DownFor time.Duration
	// HopDial connects to another host's plain hop listener (hop.go), for
	// the fast path's forwarded requests. Nil: a plain TCP dial with a
	// one-second timeout and keep-alive probes.
	HopDial func(addr string) (net.Conn, error)
}

// RemoteMachine is what a host publishes of one of its machines for the
// other hosts' edges.
type RemoteMachine struct {
	App       string `json:"app"`
	MachineID string `json:"id"`
	Region    string `json:"region"`
	// Routable: started, every check passing, not draining.
	Routable bool `json:"routable,omitempty"`
	// Down are the RouteKeys of its services whose own checks fail
	// (Backend.DownServices): a connection for one of them goes elsewhere.
	Down []string `json:"down,omitempty"`
	// Wakeable: stopped or suspended with autostart on; its host starts
	// it for a request.
	Wakeable bool `json:"wakeable,omitempty"`
	Inflight int  `json:"inflight,omitempty"`
	Soft     int  `json:"soft,omitempty"`
	Hard     int  `json:"hard,omitempty"`
	// ConfGen changes when the machine's config does (other hosts then
	// read it again for the app's settings: SetRemoteAppConfig).
	ConfGen int `json:"conf_gen,omitempty"`
}

// EdgeHost is one host's edge: where other hosts forward requests to, and
// its machines.
type EdgeHost struct {
	ID     string `json:"host"`
	Region string `json:"region"`
	Addr   string `json:"addr"` // host:port of its edge listener
	// Hop is host:port of its plain hop listener on the mesh (hop.go);
	// empty when it has none (off the mesh): then requests for its
	// machines take the net/http path and TLS.
	Hop      string          `json:"hop,omitempty"`
	Machines []RemoteMachine `json:"machines"`
}

// remoteHost is another host, as this edge sees it. Guarded by Proxy.mu.
type remoteHost struct {
	id, region, addr string
	hop              string          // its plain hop listener (hop.go), "" if none
	apps             map[string]bool // apps with an entry in their app.remote
	downUntil        time.Time       // a connection to it failed: skipped till then
	pool             []*bconn        // idle keep-alive connections to its hop listener
}

// The headers of a forwarded request (they are in headers.go's
// edgeHeaders, so a client's are dropped on every listener).
const (
	hdrEdgeApp    = "Hangar-Edge-App"    // the app (Flycast requests are not routed by Host)
	hdrEdgePrefer = "Hangar-Edge-Prefer" // the machine the edge chose
	hdrEdgeForce  = "Hangar-Edge-Force"  // the machine the client forced (fly-force-instance-id, fly-replay instance=)
)

// SetEdge turns on routing to other hosts' machines.
func (p *Proxy) SetEdge(o EdgeOptions) {
	if o.DownFor <= 0 {
		o.DownFor = 5 * time.Second
	}
	p.mu.Lock()
	p.edge = o
	p.mu.Unlock()
}

// SetEdgeHost records what a host published: its edge listener and its
// machines, replacing what it published before. This host's own record
// only says which of its apps have a machine to wake.
func (p *Proxy) SetEdgeHost(h EdgeHost) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h.ID == p.edge.Host {
		wake := map[string]bool{}
		for _, m := range h.Machines {
			if m.Wakeable {
				wake[m.App] = true
			}
		}
		p.localWake = wake
		return
	}
	if p.rhosts == nil {
		p.rhosts = map[string]*remoteHost{}
	}
	rh := p.rhosts[h.ID]
	if rh == nil || rh.addr != h.Addr || rh.hop != h.Hop {
		if rh != nil {
			p.dropHostLocked(rh)
		}
		rh = &remoteHost{id: h.ID, hop: h.Hop, apps: map[string]bool{}}
		p.rhosts[h.ID] = rh
	}
	rh.region, rh.addr = h.Region, h.Addr
	byApp := map[string][]RemoteMachine{}
	for _, m := range h.Machines {
		byApp[m.App] = append(byApp[m.App], m)
	}
	changed := false
	for name := range rh.apps {
		if _, ok := byApp[name]; !ok {
			if a := p.apps[name]; a != nil {
				a.remote = slices.DeleteFunc(a.remote, func(m *machine) bool { return m.remote == rh })
				p.forgetLocked(a)
			}
			delete(rh.apps, name)
			changed = true
		}
	}
	for name, ms := range byApp {
		a := p.appLocked(name)
		if !rh.apps[name] {
			rh.apps[name] = true
			changed = true
		}
		old := map[string]*machine{}
		keep := a.remote[:0:0]
		for _, m := range a.remote {
			if m.remote == rh {
				old[m.b.MachineID] = m
			} else {
				keep = append(keep, m)
			}
		}
		wake := false
		for _, rm := range ms {
			if rm.Wakeable {
				wake = true
			}
			if !rm.Routable {
				continue
			}
			keep = append(keep, p.remoteMachineLocked(old, rh, rm))
		}
		if wake {
			// One entry stands for the host's machines it can start.
			keep = append(keep, p.remoteMachineLocked(old, rh, RemoteMachine{App: name, Region: h.Region, Wakeable: true}))
		}
		a.remote = keep
		p.notifyLocked(a)
	}
	if changed {
		p.rebuildSlowLocked()
	}
}

// remoteMachineLocked is the entry for rm, the one of old if there is one
// (its count of this edge's requests goes on).
func (p *Proxy) remoteMachineLocked(old map[string]*machine, rh *remoteHost, rm RemoteMachine) *machine {
	m := old[rm.MachineID]
	if m == nil || m.b.Region != rm.Region {
		// m.b of another host's entry never changes once made (a host
		// that moves its edge listener gets new entries), so requests
		// read it without the lock.
		m = &machine{remote: rh, present: true, pristine: true, stats: &machineStats{},
			b: Backend{App: rm.App, MachineID: rm.MachineID, Region: rm.Region, Addr: rh.addr}}
	}
	m.routable = rm.Routable
	m.rdown = rm.Down
	m.wakeOnly = rm.MachineID == ""
	m.soft, m.hard = rm.Soft, rm.Hard
	if m.soft <= 0 {
		m.soft = DefaultSoftLimit
	}
	m.rload = rm.Inflight
	return m
}

// RemoveEdgeHost forgets a host (its record is gone: it left, or its
// lease expired because it is unreachable).
func (p *Proxy) RemoveEdgeHost(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rh := p.rhosts[id]; rh != nil {
		p.dropHostLocked(rh)
		delete(p.rhosts, id)
		p.rebuildSlowLocked()
	}
}

func (p *Proxy) dropHostLocked(rh *remoteHost) {
	for name := range rh.apps {
		if a := p.apps[name]; a != nil {
			a.remote = slices.DeleteFunc(a.remote, func(m *machine) bool { return m.remote == rh })
			p.notifyLocked(a)
			p.forgetLocked(a)
		}
	}
	rh.apps = map[string]bool{}
	closeHopPoolLocked(rh)
}

// SetRemoteAppConfig gives the proxy the settings of an app whose
// machines run on other hosts (force_https, statics, compression, its
// raw TCP ports to bind here), from one of those machines' config. An app
// with a machine on this host keeps the settings of its own machines.
func (p *Proxy) SetRemoteAppConfig(name string, cfg *types.MachineConfig) {
	if cfg == nil || len(cfg.Services) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.apps[name]; a != nil && len(a.machines) > 0 && p.confs[name] != nil {
		return
	}
	p.setConfLocked(name, confFrom(cfg, cfg.HTTPService()))
}

// EdgeHosts lists the other hosts the proxy knows.
func (p *Proxy) EdgeHosts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.rhosts))
	for id := range p.rhosts {
		ids = append(ids, id)
	}
	return ids
}

// LocalEdge is what this host publishes of its machines that the proxy
// routes to (the stopped ones it does not know come from the supervisor).
func (p *Proxy) LocalEdge() []RemoteMachine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []RemoteMachine
	for _, a := range p.apps {
		for _, m := range a.machines {
			out = append(out, RemoteMachine{App: m.b.App, MachineID: m.b.MachineID, Region: m.b.Region,
				Routable: m.routable && !m.draining, Down: m.b.DownServices, Inflight: m.inflight, Soft: m.soft, Hard: m.hard, ConfGen: m.confGen})
		}
	}
	slices.SortFunc(out, func(a, b RemoteMachine) int {
		if a.App != b.App {
			return cmpString(a.App, b.App)
		}
		return cmpString(a.MachineID, b.MachineID)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rankLocked is how far a machine is for a request to target: 0 in the
// target region; then, for another region, 1 without a measure of
// distance, else 1 plus its host's RTT in units of 100 µs (a host not
// measured last).
func (p *Proxy) rankLocked(m *machine, target string) uint64 {
	if m.b.Region == target {
		return 0
	}
	if m.remote == nil || p.edge.Distance == nil {
		return 1
	}
	d, ok := p.edge.Distance.Distance(m.remote.id)
	if !ok {
		return maxRank
	}
	return min(1+uint64(d/(100*time.Microsecond)), maxRank)
}

const maxRank = 1<<19 - 1

// target points an outgoing request at machine m: the machine itself, or
// for another host's machine that host's edge listener, pinned to it.
func (p *Proxy) target(out *http.Request, m *machine, rt routing) {
	h := out.Header
	delete(h, hdrEdgeApp)
	delete(h, hdrEdgePrefer)
	delete(h, hdrEdgeForce)
	out.URL.Host = m.b.Addr
	if m.remote == nil {
		out.URL.Scheme = "http"
		return
	}
	b := m.b // never changes for another host's entry (remoteMachineLocked)
	if hop := m.remote.hop; hop != "" {
		// On the mesh: plain HTTP/1.1 to its hop listener (hop.go).
		out.URL.Host, out.URL.Scheme = hop, "http"
	} else {
		out.URL.Host, out.URL.Scheme = b.Addr, "https"
	}
	h[hdrEdgeApp] = []string{b.App}
	switch {
	case b.MachineID == "":
	case rt.forceInstance == b.MachineID:
		h[hdrEdgeForce] = []string{b.MachineID}
	default:
		h[hdrEdgePrefer] = []string{b.MachineID}
	}
}

// edgeTransport is the transport to other hosts' edge listeners.
func (p *Proxy) edgeTransport() http.RoundTripper { return edgeRT{p} }

// edgeRT sends a forwarded request with EdgeOptions.Transport, or a
// protocol upgrade with EdgeOptions.UpgradeTransport; to a hop listener
// (plain http) with the hop transport.
type edgeRT struct{ p *Proxy }

func (t edgeRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return t.p.hopTransport().RoundTrip(req)
	}
	t.p.mu.Lock()
	tr, up := t.p.edge.Transport, t.p.edge.UpgradeTransport
	t.p.mu.Unlock()
	if up != nil && req.Header.Get("Upgrade") != "" {
		tr = up
	}
	if tr == nil {
		tr = t.p.baseTr
	}
	return tr.RoundTrip(req)
}

// remoteFailed handles an error forwarding rq to another host: the host
// gets no requests from this edge for DownFor, and an idempotent request
// without a body that failed on the connection is moved, once, to another
// machine (it reports whether to send it again, to rq.m).
func (p *Proxy) remoteFailed(rq *request, req *http.Request, err error) bool {
	m := rq.m
	if m.remote == nil || req.Context().Err() != nil {
		return false
	}
	p.mu.Lock()
	m.remote.downUntil = time.Now().Add(p.edge.DownFor)
	p.mu.Unlock()
	p.log.Warn("edge: forwarding to another host failed", "host", m.remote.id, "app", m.b.App, "machine", m.b.MachineID, "err", err)
	if rq.retried || !idempotent(req.Method) || (req.Body != nil && req.Body != http.NoBody) || !connError(err) {
		return false
	}
	rq.retried = true
	next := p.repick(rq)
	if next == nil {
		return false
	}
	p.target(req, next, rq.prefs)
	return true
}

// idempotent methods may be sent again after a connection error (RFC 9110
// 9.2.2), as Fly's proxy does.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// connError reports an error of the connection to the other host, not an
// answer: it could not be made, broke, or stopped answering pings.
func connError(err error) bool {
	var ne net.Error
	var op *net.OpError
	return errors.As(err, &op) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, http.ErrServerClosed) || isH2ConnErr(err)
}

// isH2ConnErr matches the errors net/http's HTTP/2 client gives the
// requests of a connection it closed (a ping unanswered, GOAWAY).
func isH2ConnErr(err error) bool {
	s := err.Error()
	for _, x := range []string{"http2: client connection lost", "http2: client connection force closed", "connection reset", "broken pipe", "server sent GOAWAY"} {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// ServeEdge serves the edge listener: requests other hosts' edges forward
// to this host's machines. Only other hosts reach it (the daemon serves it
// with mutual TLS). The forwarded headers are the edge's (client address,
// Fly-Region, Fly-Forwarded-Port, Fly-Request-Id); the request goes only
// to a machine of this host, the one the edge chose if it takes requests,
// and fly-replay is answered back to the edge, which follows it.
func (p *Proxy) ServeEdge(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get("Fly-Request-Id")
	if rid == "" {
		rid = requestID(p.region)
	}
	name := r.Header.Get(hdrEdgeApp)
	if name == "" {
		name = p.appFor(r.Host)
	}
	if name == "" {
		p.fail(w, rid, http.StatusNotFound, fmt.Sprintf("hangar proxy: no app is served at host %q", r.Host))
		return
	}
	rt := routing{local: true, preferInstance: r.Header.Get(hdrEdgePrefer), forceInstance: r.Header.Get(hdrEdgeForce)}
	if strings.EqualFold(r.Header.Get("Upgrade"), tcpUpgrade) {
		p.serveEdgeTCP(w, r, name, rt)
		return
	}
	a, m, code, msg := p.acquire(r.Context(), name, rt)
	if m == nil {
		if code != 0 {
			p.fail(w, rid, code, msg) // counted for the app by the edge
		}
		return
	}
	rq := &request{app: a, m: m, id: rid, prefs: rt, started: start}
	sanitizeConnection(r.Header)
	p.hopProxy().ServeHTTP(h2backend.TrailersOnlySafe(w), r.WithContext(context.WithValue(r.Context(), ctxKey{}, rq)))
	p.release(a, rq.m)
	if !p.NoStats {
		// The edge counts the request for the app; this host for its
		// machine.
		rq.m.stats.observe(rq.status, time.Since(start))
	}
}

// hopProxy is the reverse proxy of ServeEdge: no fly-replay (the edge
// follows it), the edge's forwarded headers kept.
func (p *Proxy) hopProxy() *httputil.ReverseProxy {
	p.hopOnce.Do(func() {
		p.hopRP = &httputil.ReverseProxy{
			Transport:      &retryTransport{p: p, base: machineTransport{p}},
			FlushInterval:  -1,
			Rewrite:        p.rewriteHop,
			ModifyResponse: p.modifyResponse,
			ErrorHandler:   p.errorHandler,
			BufferPool:     bufferPool{},
			ErrorLog:       p.rp.ErrorLog,
		}
	})
	return p.hopRP
}

// The forwarding headers httputil.ReverseProxy removes before Rewrite;
// on a forwarded request they are the edge's and pass on.
var hopKept = []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded"}

func (p *Proxy) rewriteHop(pr *httputil.ProxyRequest) {
	rq := pr.In.Context().Value(ctxKey{}).(*request)
	out := pr.Out
	p.target(out, rq.m, rq.prefs)
	out.Host = pr.In.Host
	for _, k := range hopKept {
		if v, ok := pr.In.Header[k]; ok {
			out.Header[k] = v
		}
	}
}

// hopFields are the Proxy fields of the edge listener's side.
type hopFields struct {
	hopOnce sync.Once
	hopRP   *httputil.ReverseProxy
	// The transport of the net/http path to other hosts' hop listeners
	// (hop.go).
	hopTrOnce sync.Once
	hopTr     *http.Transport
}
