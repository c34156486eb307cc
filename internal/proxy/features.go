package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/flyreplay"
	"github.com/hangar-dev/hangar/internal/h2backend"
	"github.com/hangar-dev/hangar/internal/statics"
	"github.com/hangar-dev/hangar/internal/types"
)

// The protocol features of issue 6 that sit on the net/http path
// (ServeHTTP): force_https, [[statics]], per-app TLS options, h2_backend
// and idle_timeout transports, fly-replay, http_options.compress, and the
// load balancer as the raw TCP services' picker. Apps that need one of
// them on plain HTTP are listed in Proxy.slow, and the fast path hands
// their requests over.

// appConf is what the proxy keeps of an app's latest machine config. It
// outlives the app's machines (a stopped app still redirects, serves
// statics and keeps its TCP ports) until RemoveApp.
type appConf struct {
	image      string
	forceHTTPS bool
	h2         bool
	compress   bool // http_options.compress
	tls        *types.TLSOptions
	statics    []types.Static
	services   []types.MachineService
}

// confFrom derives an app's settings from a machine config; svc is the
// service the HTTP listeners serve (the supervisor's choice).
func confFrom(cfg *types.MachineConfig, svc *types.MachineService) *appConf {
	c := &appConf{image: cfg.Image, statics: cfg.Statics, services: cfg.Services}
	if svc != nil {
		for _, pt := range svc.Ports {
			if pt.ForceHTTPS {
				c.forceHTTPS = true
			}
			if pt.TLSOptions != nil && (c.tls == nil || pt.Port != nil && *pt.Port == 443) {
				c.tls = pt.TLSOptions
			}
		}
		c.h2, _ = backendOptions(svc)
		c.compress = compressOption(svc)
	}
	return c
}

// compressOption is a service's http_options.compress: the first port
// that sets it decides (ports 80 and 443 of [http_service] carry the same
// http_options).
func compressOption(svc *types.MachineService) bool {
	for _, pt := range svc.Ports {
		if pt.HTTPOptions != nil && pt.HTTPOptions.Compress != nil {
			return *pt.HTTPOptions.Compress
		}
	}
	return false
}

// backendOptions are a service's h2_backend and idle_timeout (from the
// first port that sets http_options).
func backendOptions(svc *types.MachineService) (bool, time.Duration) {
	if svc == nil {
		return false, 0
	}
	for _, pt := range svc.Ports {
		if pt.HTTPOptions != nil {
			h2, o := h2backend.FromHTTPOptions(pt.HTTPOptions)
			return h2, o.IdleTimeout
		}
	}
	return false, 0
}

// setConfLocked records an app's config; a change rebuilds the set of apps
// the fast path hands over and signals ServicesChanged.
func (p *Proxy) setConfLocked(name string, c *appConf) {
	if old := p.confs[name]; old != nil && reflect.DeepEqual(old, c) {
		return
	}
	if p.confs == nil {
		p.confs = map[string]*appConf{}
	}
	p.confs[name] = c
	p.rebuildSlowLocked()
	p.notifyServices()
}

// rebuildSlowLocked recomputes the apps whose plain-HTTP requests must take
// the net/http path.
func (p *Proxy) rebuildSlowLocked() {
	slow := map[string]bool{}
	for name, c := range p.confs {
		if c.forceHTTPS || c.h2 || c.compress || len(c.statics) > 0 {
			slow[name] = true
		}
	}
	for name := range p.replays {
		slow[name] = true
	}
	p.slow.Store(&slow)
}

// slowHost reports whether the fast path must hand a request for host to
// the net/http path. With no such app it costs one atomic load.
func (p *Proxy) slowHost(host []byte) bool {
	s := p.slow.Load()
	if s == nil || len(*s) == 0 {
		return false
	}
	return (*s)[p.appFor(string(host))]
}

// markReplay records that an app answered with fly-replay: from now on its
// requests take the net/http path, where bodies are recorded for replays.
func (p *Proxy) markReplay(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replays[name] {
		return
	}
	if p.replays == nil {
		p.replays = map[string]bool{}
	}
	p.replays[name] = true
	p.rebuildSlowLocked()
}

// SeedAppConfig records an app's machine config if the proxy knows none
// yet: at daemon start, for apps whose machines are all stopped, so their
// TCP ports, statics and force_https work (and wake machines) before a
// machine runs.
func (p *Proxy) SeedAppConfig(name string, cfg *types.MachineConfig) {
	if cfg == nil || len(cfg.Services) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.confs[name] == nil {
		p.setConfLocked(name, confFrom(cfg, cfg.HTTPService()))
	}
}

func (p *Proxy) conf(name string) *appConf {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.confs[name]
}

// RemoveApp forgets an app's settings (the app was deleted).
func (p *Proxy) RemoveApp(name string) {
	p.mu.Lock()
	delete(p.confs, name)
	delete(p.replays, name)
	p.rebuildSlowLocked()
	p.mu.Unlock()
	p.statMu.Lock()
	delete(p.stat, name)
	p.statMu.Unlock()
	p.notifyServices()
}

// ServicesChanged is signalled when an app's services may have changed;
// read AppServices then. It has one reader; others use SubscribeServices.
func (p *Proxy) ServicesChanged() <-chan struct{} { return p.svcCh }

// SubscribeServices is ServicesChanged for another reader: the channel is
// signalled (coalesced) whenever ServicesChanged is, until cancel.
func (p *Proxy) SubscribeServices() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	p.subMu.Lock()
	if p.svcSubs == nil {
		p.svcSubs = map[chan struct{}]struct{}{}
	}
	p.svcSubs[ch] = struct{}{}
	p.subMu.Unlock()
	return ch, func() {
		p.subMu.Lock()
		delete(p.svcSubs, ch)
		p.subMu.Unlock()
	}
}

// notifyServices signals ServicesChanged and every subscriber.
func (p *Proxy) notifyServices() {
	select {
	case p.svcCh <- struct{}{}:
	default:
	}
	p.subMu.Lock()
	for ch := range p.svcSubs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.subMu.Unlock()
}

// AppServices returns the services of every app the proxy knows a config
// of (from its latest machine config).
func (p *Proxy) AppServices() map[string][]types.MachineService {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]types.MachineService, len(p.confs))
	for name, c := range p.confs {
		out[name] = c.services
	}
	return out
}

// TLSOptions returns the tls_options of the app served at host (nil: the
// defaults), for the HTTPS listener's per-client config.
func (p *Proxy) TLSOptions(host string) *types.TLSOptions {
	name := p.appFor(host)
	if name == "" {
		return nil
	}
	if c := p.conf(name); c != nil {
		return c.tls
	}
	return nil
}

// forceHTTPS redirects a plain-HTTP request of an app whose service has
// force_https; it reports whether it answered.
func (p *Proxy) forceHTTPS(w http.ResponseWriter, r *http.Request, c *appConf) bool {
	if !c.forceHTTPS || r.TLS != nil {
		return false
	}
	loc, ok := certs.ForceHTTPS(r, true, p.HTTPSPort)
	if !ok {
		return false
	}
	h := w.Header()
	h.Set("Fly-Request-Id", requestID(p.region))
	h.Set("Server", serverName)
	http.Redirect(w, r, loc, http.StatusMovedPermanently)
	return true
}

type staticsEntry struct {
	key string
	h   *statics.Handler
}

// staticsHandler returns the app's [[statics]] handler, built from the
// image's root filesystem on first use and again when the image or the
// statics change. Nil when it cannot be built (logged).
func (p *Proxy) staticsHandler(ctx context.Context, name string, c *appConf) *statics.Handler {
	if p.StaticsRoot == nil {
		return nil
	}
	key := fmt.Sprintf("%s %v", c.image, c.statics)
	p.statMu.Lock()
	defer p.statMu.Unlock()
	if e := p.stat[name]; e != nil && e.key == key {
		return e.h
	}
	root, err := p.StaticsRoot(ctx, c.image)
	if err != nil {
		p.log.Warn("statics: image root filesystem", "app", name, "image", c.image, "err", err)
		return nil
	}
	h, err := statics.New(root, statics.FromMachineConfig(c.statics))
	if err != nil {
		p.log.Warn("statics", "app", name, "err", err)
		return nil
	}
	h.Next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serveApp(w, r, name) })
	if p.stat == nil {
		p.stat = map[string]*staticsEntry{}
	}
	p.stat[name] = &staticsEntry{key: key, h: h}
	return h
}

// trKey identifies a transport to machines: HTTP/1.1 or h2c, and the idle
// timeout of its connections.
type trKey struct {
	h2   bool
	idle time.Duration
}

// transportFor returns the transport for a machine's service.
func (p *Proxy) transportFor(m *machine) http.RoundTripper {
	p.mu.Lock()
	k := trKey{m.h2, m.idleTimeout}
	p.mu.Unlock()
	if k == (trKey{}) {
		return p.baseTr
	}
	p.trMu.Lock()
	defer p.trMu.Unlock()
	if tr := p.trs[k]; tr != nil {
		return tr
	}
	o := h2backend.Options{IdleTimeout: k.idle}
	var tr http.RoundTripper
	if k.h2 {
		tr = h2backend.NewH2CTransport(o)
	} else {
		t := h2backend.NewHTTP1Transport(o)
		t.DisableCompression = true
		tr = t
	}
	if p.trs == nil {
		p.trs = map[trKey]http.RoundTripper{}
	}
	p.trs[k] = tr
	return tr
}

// machineTransport sends a request with the transport of the machine the
// request is counted against.
type machineTransport struct{ p *Proxy }

func (t machineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rq, _ := req.Context().Value(ctxKey{}).(*request)
	if rq == nil {
		return t.p.baseTr.RoundTrip(req)
	}
	return t.p.transportFor(rq.m).RoundTrip(req)
}

// replayTarget is the load balancer as fly-replay's Target.
type replayTarget struct{ p *Proxy }

// replayFrom is the machine a request was sent to.
func replayFrom(req *http.Request) flyreplay.Machine {
	rq, _ := req.Context().Value(ctxKey{}).(*request)
	if rq == nil {
		return flyreplay.Machine{}
	}
	return flyreplay.Machine{App: rq.m.b.App, ID: rq.m.b.MachineID, Region: rq.m.b.Region}
}

func (t replayTarget) Pick(ctx context.Context, d flyreplay.Directive, from flyreplay.Machine, exclude []flyreplay.Machine) (flyreplay.Machine, error) {
	p := t.p
	name := d.App
	if name == "" {
		name = from.App
	}
	rt := routing{forceInstance: d.Instance, preferInstance: d.PreferInstance}
	for _, x := range exclude {
		if x.App == name {
			rt.exclude = x.ID
		}
	}
	if len(d.Regions) > 0 {
		region, ok := p.replayRegion(name, d.Regions, rt.exclude)
		if !ok {
			return flyreplay.Machine{}, fmt.Errorf("app %s has no machine in region %v: %w", name, d.Regions, flyreplay.ErrNoTarget)
		}
		rt.forceRegion = region
	}
	a, m, code, msg := p.acquire(ctx, name, rt)
	if m == nil {
		if code == 0 {
			return flyreplay.Machine{}, ctx.Err()
		}
		return flyreplay.Machine{}, fmt.Errorf("%s: %w", msg, flyreplay.ErrNoTarget)
	}
	if rq, _ := ctx.Value(ctxKey{}).(*request); rq != nil {
		rq.replay = append(rq.replay, held{a: a, m: m})
	} else {
		p.release(a, m)
	}
	return flyreplay.Machine{App: m.b.App, ID: m.b.MachineID, Region: m.b.Region}, nil
}

// replayRegion is the first of regions with a routable machine of the app
// ("" for "any").
func (p *Proxy) replayRegion(name string, regions []string, exclude string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.apps[name]
	for _, r := range regions {
		if r == "any" {
			return "", true
		}
		if a == nil {
			continue
		}
		for _, m := range a.machines {
			if m.b.Region == r && m.routable && !m.draining && m.b.MachineID != exclude {
				return r, true
			}
		}
	}
	return "", false
}

// held is a machine a replayed request is counted against.
type held struct {
	a *app
	m *machine
}

func (t replayTarget) Send(ctx context.Context, to flyreplay.Machine, req *http.Request) (*http.Response, error) {
	p := t.p
	rq, _ := ctx.Value(ctxKey{}).(*request)
	var h held
	if rq != nil {
		for i, x := range rq.replay {
			if x.m.b.MachineID == to.ID && x.m.b.App == to.App {
				h = x
				rq.replay = append(rq.replay[:i:i], rq.replay[i+1:]...)
				break
			}
		}
	}
	if h.m == nil {
		// Not picked: the fallback to the machine that answered.
		a, m, _, msg := p.acquire(ctx, to.App, routing{forceInstance: to.ID})
		if m == nil {
			return nil, fmt.Errorf("%s: %w", msg, flyreplay.ErrNoTarget)
		}
		h = held{a: a, m: m}
	}
	p.mu.Lock()
	addr := h.m.b.Addr
	p.mu.Unlock()
	req.URL.Scheme = "http"
	req.URL.Host = addr
	resp, err := p.transportFor(h.m).RoundTrip(req)
	if err != nil {
		p.release(h.a, h.m)
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { p.release(h.a, h.m) }}
	return resp, nil
}

// releaseBody ends the count of a request against a machine when the
// response body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// Pick implements tcpproxy.Picker: a machine of app for a raw TCP
// connection to internalPort, with the limits, health and autostart of
// HTTP requests; release ends the connection's count.
func (p *Proxy) Pick(ctx context.Context, name string, internalPort int) (string, func(), error) {
	a, m, code, msg := p.acquire(ctx, name, routing{})
	if m == nil {
		if code == 0 {
			return "", nil, ctx.Err()
		}
		return "", nil, errors.New(msg)
	}
	p.mu.Lock()
	host, _, err := net.SplitHostPort(m.b.Addr)
	p.mu.Unlock()
	if err != nil {
		p.release(a, m)
		return "", nil, fmt.Errorf("machine %s of app %s: address: %w", m.b.MachineID, name, err)
	}
	var once sync.Once
	return net.JoinHostPort(host, strconv.Itoa(internalPort)), func() { once.Do(func() { p.release(a, m) }) }, nil
}
