package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/tcpproxy"
	"github.com/hangar-dev/hangar/internal/types"
)

// flycast serves the apps' Flycast addresses (docs/flycast.md): it keeps
// each allocated address on the bridge and the proxy listening on it for
// the app's service ports, releases the addresses of deleted apps, and
// takes connections for a Flycast address out of the public listeners
// when those hold the port on a wildcard address.
type flycast struct {
	st   store.Store
	netm *network.Manager
	px   *proxy.Proxy
	tls  func(string) *tls.Config
	log  *slog.Logger
	rng  netip.Prefix
	// heldPorts are ports a public listener holds on a wildcard address
	// (so the Flycast listener is not bound; connections are handed over);
	// tcpWildcard: the raw TCP services are bound on a wildcard address
	// too, which holds every service port but 80 and 443.
	heldPorts   map[int]bool
	tcpWildcard bool

	kick chan struct{} // a reconcile is due

	mu     sync.Mutex // guards apps and byAddr
	apps   map[string]*flycastApp
	byAddr map[netip.Addr]*flycastApp
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type flycastApp struct {
	app  string
	addr netip.Addr
	mgr  *tcpproxy.Manager
}

// startFlycast starts serving the Flycast addresses until ctx ends. Call it before tcpMgr binds anything: it
// wraps tcpMgr's listeners. public are the proxy's HTTP and HTTPS
// listeners (nil entries are skipped).
func startFlycast(ctx context.Context, st store.Store, netm *network.Manager, px *proxy.Proxy, deletions *apps.Deletions, tcpMgr *tcpproxy.Manager,
	tlsConfig func(string) *tls.Config, public []net.Listener, log *slog.Logger) *flycast {
	f := &flycast{st: st, netm: netm, px: px, tls: tlsConfig, log: log, heldPorts: map[int]bool{},
		apps: map[string]*flycastApp{}, byAddr: map[netip.Addr]*flycastApp{}}
	rng, err := netm.FlycastRange()
	if err != nil {
		log.Warn("no Flycast addresses on this daemon", "err", err)
		return f
	}
	f.rng = rng
	for _, ln := range public {
		if ln == nil {
			continue
		}
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && (ta.IP == nil || ta.IP.IsUnspecified()) {
			f.heldPorts[ta.Port] = true
		}
	}
	if ip := net.ParseIP(tcpMgr.ListenHost); tcpMgr.ListenHost == "" || ip != nil && ip.IsUnspecified() {
		f.tcpWildcard = true
	}
	tcpMgr.WrapListener = f.divert
	ctx, f.cancel = context.WithCancel(ctx)
	f.kick = make(chan struct{}, 1)
	// Deleting an app releases its address.
	deletions.Subscribe(ctx, func(context.Context, string) { f.signal() })
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.run(ctx)
	}()
	return f
}

// held reports whether a public wildcard listener holds port.
func (f *flycast) held(port int) bool {
	return f.heldPorts[port] || f.tcpWildcard && port != 80 && port != 443
}

// run reconciles whenever the Flycast records, the apps or their services
// change (and every 30s; 1s after a failure) until ctx ends, then closes
// the listeners.
func (f *flycast) run(ctx context.Context) {
	defer f.closeAll()
	svc, unsubscribe := f.px.SubscribeServices()
	defer unsubscribe()
	go f.watch(ctx)
	for {
		wait := 30 * time.Second
		if err := f.reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("Flycast: will retry", "err", err)
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		case <-svc:
		case <-time.After(wait):
		}
	}
}

// signal asks run for a reconcile.
func (f *flycast) signal() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// watch signals on every change of a Flycast record (app deletions come
// from apps.Deletions).
func (f *flycast) watch(ctx context.Context) {
	for ctx.Err() == nil {
		// A store that is unavailable for a while (etcd without quorum)
		// is retried; only a closed one ends the loop.
		rev, err := f.st.Revision(ctx)
		if errors.Is(err, store.ErrClosed) {
			return
		}
		var ch <-chan store.Event
		if err == nil {
			ch, err = f.st.Watch(ctx, apps.FlycastKeyPrefix, rev)
		}
		if err == nil {
			f.signal()
			for range ch {
				f.signal()
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// reconcile makes the bridge addresses and listeners match the state.
func (f *flycast) reconcile(ctx context.Context) error {
	ips, err := apps.ListFlycast(ctx, f.st)
	if err != nil {
		return err
	}
	want := map[string]netip.Addr{}
	for _, ip := range ips {
		if _, err := f.st.Get(ctx, apps.Key(ip.App)); errors.Is(err, store.ErrNotFound) {
			// Deleting an app releases its address, as on Fly.
			if err := apps.ReleaseFlycast(ctx, f.st, ip.App); err != nil {
				return err
			}
			f.log.Info("released the Flycast address of a deleted app", "app", ip.App, "addr", ip.Address)
			continue
		}
		if a, err := netip.ParseAddr(ip.Address); err == nil && f.rng.Contains(a) {
			want[ip.App] = a
		} else {
			f.log.Warn("Flycast address outside this daemon's range; not served", "app", ip.App, "addr", ip.Address, "range", f.rng)
		}
	}
	services := f.px.AppServices()
	var errs []error
	var closing []*flycastApp
	f.mu.Lock()
	for app, fa := range f.apps {
		if want[app] != fa.addr {
			closing = append(closing, fa)
			delete(f.apps, app)
			delete(f.byAddr, fa.addr)
		}
	}
	for app, addr := range want {
		fa := f.apps[app]
		if fa == nil {
			if err := f.netm.AddFlycast(addr); err != nil {
				errs = append(errs, err)
				continue
			}
			fa = &flycastApp{app: app, addr: addr, mgr: &tcpproxy.Manager{Picker: f.px, HTTP: f.px, ListenHost: addr.String(),
				Private: true, Divert: f.held, TLSConfig: f.tls, Log: f.log.With("app", app)}}
			f.apps[app], f.byAddr[addr] = fa, fa
			f.log.Info("serving a Flycast address", "app", app, "addr", addr)
		}
		if err := fa.mgr.Set(app, flycastServices(services[app])); err != nil {
			errs = append(errs, err)
		}
	}
	f.mu.Unlock()
	for _, fa := range closing {
		// Connections in flight finish; the address goes now.
		go fa.mgr.Close()
		if err := f.netm.RemoveFlycast(fa.addr); err != nil {
			errs = append(errs, err)
		}
		f.log.Info("Flycast address released", "app", fa.app, "addr", fa.addr)
	}
	// Addresses released while the daemon was down.
	if onBridge, err := f.netm.FlycastAddrs(); err == nil {
		for _, a := range onBridge {
			if !f.serving(a) {
				if err := f.netm.RemoveFlycast(a); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (f *flycast) serving(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byAddr[a] != nil
}

// flycastServices are all of an app's service ports: over Flycast the
// proxy's public side is the app's own port numbers (80 and 443 too).
func flycastServices(svcs []types.MachineService) []tcpproxy.Service {
	out := make([]tcpproxy.Service, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, tcpproxy.FromMachineService(s))
	}
	return out
}

// closeAll closes every Flycast listener (the addresses stay on the
// bridge: machines keep them across a daemon restart).
func (f *flycast) closeAll() {
	f.mu.Lock()
	apps := f.apps
	f.apps, f.byAddr = map[string]*flycastApp{}, map[netip.Addr]*flycastApp{}
	f.mu.Unlock()
	for _, fa := range apps {
		fa.mgr.Close()
	}
}

// close stops serving and waits for the listeners to close.
func (f *flycast) close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// divert wraps a public listener: connections to a Flycast address are
// handed to that app's Flycast listener for the port (or closed, when the
// app serves no such port) instead of being served by Host header.
func (f *flycast) divert(ln net.Listener) net.Listener {
	if ln == nil || !f.rng.IsValid() {
		return ln
	}
	return &divertListener{Listener: ln, f: f}
}

type divertListener struct {
	net.Listener
	f *flycast
}

func (d *divertListener) Accept() (net.Conn, error) {
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ta, ok := c.LocalAddr().(*net.TCPAddr)
		if !ok {
			return c, nil
		}
		ap := ta.AddrPort()
		if a := ap.Addr().Unmap(); !d.f.rng.Contains(a) {
			return c, nil
		}
		d.f.mu.Lock()
		fa := d.f.byAddr[ap.Addr().Unmap()]
		d.f.mu.Unlock()
		if fa == nil || !fa.mgr.Deliver(int(ap.Port()), c) {
			c.Close()
		}
	}
}
