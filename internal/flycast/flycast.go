// Package flycast serves the apps' Flycast addresses, their private
// load-balanced IPv6 addresses on the machine bridge (docs/flycast.md): the
// addresses on the bridge, the nftables redirect of connections to them to
// one listener of its own, and the hand-over of each connection to the
// proxy for the app and port that were called.
package flycast

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/proxy"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/tcpproxy"
	"github.com/hangar-dev/hangar/internal/types"
)

// Server serves the apps' Flycast addresses (docs/flycast.md): it keeps
// each allocated address on the bridge, steers TCP connections to the
// addresses to one listener of its own on the bridge's gateway (nftables
// DNAT, network.RedirectFlycast), and hands each connection to the app's
// tcpproxy manager for the port that was called. It releases the
// addresses of deleted apps, and takes connections for a Flycast address
// out of the public listeners too (divert), for a host where the redirect
// is missing.
type Server struct {
	st   store.Store
	netm *network.Manager
	px   *proxy.Proxy
	tls  func(string) *tls.Config
	log  *slog.Logger
	rng  netip.Prefix

	kick      chan struct{} // a reconcile is due
	readyCh   chan struct{} // closed by ready
	readyOnce sync.Once

	// ln is the one listener every Flycast connection reaches (through
	// the redirect); bound by reconcile (or inherited on a reload) and
	// closed by closeAll.
	lnMu      sync.Mutex // guards ln and serveDone
	ln        net.Listener
	serveDone chan struct{} // closed when serve(ln) returns
	// redirected is the address list the nftables rules name (nil before
	// the first redirect); only run's goroutine uses it.
	redirected []netip.Addr

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

// Start starts serving the Flycast addresses until ctx ends. Call it before tcpMgr binds anything: it
// wraps tcpMgr's listeners. inherited is the Flycast listener a reloading
// daemon handed over (nil: bind one).
func Start(ctx context.Context, st store.Store, netm *network.Manager, px *proxy.Proxy, deletions *apps.Deletions, tcpMgr *tcpproxy.Manager,
	tlsConfig func(string) *tls.Config, inherited net.Listener, log *slog.Logger) *Server {
	f := &Server{st: st, netm: netm, px: px, tls: tlsConfig, log: log,
		apps: map[string]*flycastApp{}, byAddr: map[netip.Addr]*flycastApp{}}
	rng, err := netm.FlycastRange()
	if err != nil {
		log.Warn("no Flycast addresses on this daemon", "err", err)
		if inherited != nil {
			inherited.Close()
		}
		return f
	}
	f.rng = rng
	tcpMgr.WrapListener = f.Divert
	ctx, f.cancel = context.WithCancel(ctx)
	f.kick, f.readyCh = make(chan struct{}, 1), make(chan struct{})
	if inherited != nil {
		if err := f.useListener(inherited); err != nil {
			log.Warn("not using the Flycast listener of the previous daemon; binding a new one", "err", err)
		}
	}
	// Deleting an app releases its address.
	deletions.Subscribe(ctx, func(context.Context, string) { f.signal() })
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.run(ctx)
	}()
	return f
}

// Listener is the Flycast listener, to hand over on a reload (nil when
// there is none).
func (f *Server) Listener() net.Listener {
	f.lnMu.Lock()
	defer f.lnMu.Unlock()
	if f.ln == nil {
		return nil
	}
	return f.ln
}

// useListener takes ln (on the bridge's IPv6 gateway) as the Flycast
// listener; it closes ln and fails if ln is elsewhere. Connections wait in
// its queue until startServing.
func (f *Server) useListener(ln net.Listener) error {
	_, gw6 := f.netm.Gateways()
	ta, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !ta.IP.Equal(gw6) {
		ln.Close()
		return fmt.Errorf("flycast listener %s is not on the bridge's gateway %s (the network changed?)", ln.Addr(), gw6)
	}
	f.lnMu.Lock()
	f.ln = ln
	f.lnMu.Unlock()
	return nil
}

// Ready lets the Flycast listener accept once the apps' services are known
// (the daemon calls it when the proxy starts serving): the first reconcile
// after it starts serve. Before, connections wait in the listener's queue
// (on a reload: those the previous daemon left there), rather than being
// reset for an app whose ports are not known yet.
func (f *Server) Ready() {
	if f.readyCh == nil {
		return
	}
	f.readyOnce.Do(func() { close(f.readyCh) })
	f.signal()
}

func (f *Server) isReady() bool {
	select {
	case <-f.readyCh:
		return true
	default:
		return false
	}
}

// startServing starts serve on the listener (once; after ready).
func (f *Server) startServing() {
	f.lnMu.Lock()
	defer f.lnMu.Unlock()
	if f.ln == nil || f.serveDone != nil {
		return
	}
	done := make(chan struct{})
	f.serveDone = done
	ln := f.ln
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		f.serve(ln)
	}()
}

// ensureListener binds the Flycast listener on the bridge's IPv6 gateway,
// on a port the kernel picks, unless there is one already.
func (f *Server) ensureListener() (netip.AddrPort, error) {
	if ln := f.Listener(); ln != nil {
		return ln.Addr().(*net.TCPAddr).AddrPort(), nil
	}
	_, gw6 := f.netm.Gateways()
	ln, err := net.Listen("tcp6", net.JoinHostPort(gw6.String(), "0"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("flycast listener on the bridge gateway %s: %w (is the bridge up? `ip addr show` lists its addresses)", gw6, err)
	}
	if err := f.useListener(ln); err != nil {
		return netip.AddrPort{}, err
	}
	f.log.Info("Flycast listener", "addr", ln.Addr())
	return ln.Addr().(*net.TCPAddr).AddrPort(), nil
}

// serve accepts the redirected connections and hands each to the
// manager of the app whose address was called, for the port called;
// others (an address or port not served) are reset.
func (f *Server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Warn("Flycast accept", "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		dst, err := network.OriginalDst(tc)
		if err != nil {
			f.log.Debug("Flycast connection without an original destination", "err", err)
			reset(tc)
			continue
		}
		f.mu.Lock()
		fa := f.byAddr[dst.Addr().Unmap()]
		f.mu.Unlock()
		if fa == nil || !fa.mgr.Deliver(int(dst.Port()), &calledConn{TCPConn: tc, called: net.TCPAddrFromAddrPort(dst)}) {
			reset(tc)
		}
	}
}

// reset closes c with a RST, as a closed port answers.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
}

// calledConn is a redirected connection whose local address is the one
// the client called (the Flycast address and port), not the listener's:
// X-Forwarded-Port and PROXY protocol headers name what was called.
type calledConn struct {
	*net.TCPConn
	called net.Addr
}

func (c *calledConn) LocalAddr() net.Addr { return c.called }

// run reconciles whenever the Flycast records, the apps or their services
// change (and every 30s; 1s after a failure) until ctx ends, then closes
// the listeners.
func (f *Server) run(ctx context.Context) {
	defer f.closeAll()
	svc, unsubscribe := f.px.SubscribeServices()
	defer unsubscribe()
	go f.watch(ctx)
	for {
		wait := 30 * time.Second
		ready := f.isReady() // before: this reconcile sees what ready promised
		if err := f.reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("Flycast: will retry", "err", err)
			wait = time.Second
		}
		if ready {
			f.startServing()
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
func (f *Server) signal() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// watch signals on every change of a Flycast record (app deletions come
// from apps.Deletions).
func (f *Server) watch(ctx context.Context) {
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
func (f *Server) reconcile(ctx context.Context) error {
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
			// The manager binds nothing: its connections come from the
			// Flycast listener (and the public listeners' divert).
			fa = &flycastApp{app: app, addr: addr, mgr: &tcpproxy.Manager{Picker: f.px, HTTP: f.px, ListenHost: addr.String(),
				Private: true, Divert: func(int) bool { return true }, TLSConfig: f.tls, Log: f.log.With("app", app)}}
			f.apps[app], f.byAddr[addr] = fa, fa
			f.log.Info("serving a Flycast address", "app", app, "addr", addr)
		}
		if err := fa.mgr.Set(app, flycastServices(services[app])); err != nil {
			errs = append(errs, err)
		}
	}
	served := make([]netip.Addr, 0, len(f.byAddr))
	for a := range f.byAddr {
		served = append(served, a)
	}
	f.mu.Unlock()
	slices.SortFunc(served, netip.Addr.Compare)
	if err := f.redirect(served); err != nil {
		errs = append(errs, err)
	}
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

// redirect points the nftables rules for the served addresses at the
// Flycast listener, when they changed.
func (f *Server) redirect(served []netip.Addr) error {
	to, err := f.ensureListener()
	if err != nil {
		return err
	}
	if f.redirected != nil && slices.Equal(f.redirected, served) {
		return nil
	}
	if err := f.netm.RedirectFlycast(served, to); err != nil {
		return err
	}
	f.redirected = served
	return nil
}

func (f *Server) serving(a netip.Addr) bool {
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

// closeAll stops accepting Flycast connections, lets every app's manager
// take those already accepted and finish the requests and connections in
// flight (for up to flycastDrain), and closes the managers. The addresses
// and the redirect stay: machines keep them across a daemon restart, and
// a reloading daemon's successor serves the listener's socket, which it
// was handed, from where this one stopped.
func (f *Server) closeAll() {
	f.lnMu.Lock()
	ln, done := f.ln, f.serveDone
	f.lnMu.Unlock()
	if ln != nil {
		ln.Close()
		if done != nil { // nil: never served (stopped before ready)
			<-done
		}
	}
	f.mu.Lock()
	apps := f.apps
	f.apps, f.byAddr = map[string]*flycastApp{}, map[netip.Addr]*flycastApp{}
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), flycastDrain)
	defer cancel()
	var wg sync.WaitGroup
	for _, fa := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fa.mgr.Shutdown(ctx); err != nil {
				f.log.Warn("Flycast connections cut at shutdown", "app", fa.app, "err", err)
			}
		}()
	}
	wg.Wait()
}

// flycastDrain bounds how long a stopping (or reloading) daemon waits for
// Flycast requests and raw connections in flight: as long as a stopping
// daemon gives its public listeners.
const flycastDrain = 10 * time.Second

// Close stops serving and waits for the listeners to close.
func (f *Server) Close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// Divert wraps a public listener: connections to a Flycast address are
// handed to that app's Flycast listener for the port (or closed, when the
// app serves no such port) instead of being served by Host header.
func (f *Server) Divert(ln net.Listener) net.Listener {
	if ln == nil || !f.rng.IsValid() {
		return ln
	}
	return &divertListener{Listener: ln, f: f}
}

type divertListener struct {
	net.Listener
	f *Server
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
