package proxy

import (
	"reflect"
	"time"

	"github.com/hangar-dev/hangar/internal/h2backend"
	"github.com/hangar-dev/hangar/internal/types"
)

// Apps that need a protocol feature on the net/http path (force_https,
// [[statics]], per-app TLS options, h2_backend and idle_timeout
// transports, fly-replay, http_options.compress) are listed in
// Proxy.slow, and the fast path hands their requests over.
//
// The settings the proxy keeps of each app (from its latest machine
// config): which apps' plain-HTTP requests the fast path hands to the
// net/http path (Proxy.slow: force_https, [[statics]], h2_backend,
// compress, fly-replay), and the apps' services, which the raw TCP and
// Flycast listeners read (AppServices, ServicesChanged).

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
	for _, rh := range p.rhosts {
		// Requests that may go to another host without a plain hop
		// listener take the net/http path (remote.go); the fast path
		// forwards on the plain hop (hop.go).
		if rh.hop != "" {
			continue
		}
		for name := range rh.apps {
			slow[name] = true
		}
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
