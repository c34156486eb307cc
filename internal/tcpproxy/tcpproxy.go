// Package tcpproxy runs the raw TCP side of the edge proxy: the listeners
// that `[[services]]` ask for (single `ports` and `start_port`/`end_port`
// ranges) and the forwarding of each accepted connection to a machine that
// a Picker (the proxy's load balancer) chooses. Per port, the handlers
// decide what happens to the bytes: none passes them through, `tls`
// terminates TLS and passes plain TCP, `proxy_proto` writes a PROXY
// protocol v1 or v2 header first, and `http` hands the connection to an
// http.Handler (the proxy's). An idle connection (no byte either way for
// IdleTimeout) is closed.
package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/proxyproto"
	"github.com/hangar-dev/hangar/internal/types"
)

// Handler names, as in fly.toml.
const (
	HandlerTLS        = "tls"
	HandlerHTTP       = types.HandlerHTTP
	HandlerProxyProto = "proxy_proto"
)

// Port is one `[[services.ports]]` entry.
type Port struct {
	Port      int      // a single port, or
	StartPort int      // a range start_port..end_port (inclusive)
	EndPort   int      //
	Handlers  []string // "", "tls", "http", "proxy_proto", "pg_tls"
	// ProxyProtoVersion is proxy_proto_options.version: "v1" or "v2"
	// (default "v1", as Fly's).
	ProxyProtoVersion string
}

// Service is one `[[services]]` entry of an app.
type Service struct {
	// Key is the machine service's RouteKey (types.MachineService): with
	// a ServicePicker, only machines where that service is up are picked.
	Key          string
	InternalPort int
	Ports        []Port
	// IdleTimeout closes a connection with no traffic for this long
	// (Manager.IdleTimeout if 0).
	IdleTimeout time.Duration
}

// ServicePicker is a Picker that knows, per machine, which services' checks
// pass: PickService picks only among machines where the service (its
// types.MachineService.RouteKey) is up. The proxy's load balancer is one.
type ServicePicker interface {
	PickService(ctx context.Context, app, service string, internalPort int) (addr string, release func(), err error)
}

// Picker chooses the machine for a new connection. The proxy's load
// balancer implements it, with the same limits and health rules as HTTP.
type Picker interface {
	// Pick returns the address (host:port) of a machine of app serving
	// internalPort, and release, called once when the connection ends.
	// It may block (to start a stopped machine) until ctx ends.
	Pick(ctx context.Context, app string, internalPort int) (addr string, release func(), err error)
}

// ServiceConnPicker is a ConnPicker that picks only among machines where
// the service (its RouteKey) is up, as ServicePicker does.
type ServiceConnPicker interface {
	PickConnService(ctx context.Context, app, service string, internalPort int) (conn net.Conn, release func(), err error)
}

// ConnPicker is an optional capability of a Picker: it makes the
// connection to the machine itself (the proxy's edge reaches a machine on
// another host through that host). The Manager uses it when the Picker
// has it.
type ConnPicker interface {
	// PickConn returns a connection to a machine of app serving
	// internalPort, and release, called once when the connection ends.
	PickConn(ctx context.Context, app string, internalPort int) (conn net.Conn, release func(), err error)
}

// Manager binds the ports services ask for and forwards connections.
type Manager struct {
	Picker Picker
	// ListenHost is the address the ports are bound on ("" = all).
	ListenHost string
	// TLSConfig gives the server config for an app's `tls` handler.
	TLSConfig func(app string) *tls.Config
	// HTTP serves ports with the `http` handler; AppFromContext tells
	// it the app the port belongs to.
	HTTP http.Handler
	// IdleTimeout default: 10 minutes. DialTimeout default: 5 s.
	// HandshakeTimeout (TLS, and picking a machine) default: 10 s.
	IdleTimeout, DialTimeout, HandshakeTimeout time.Duration
	Log                                        *slog.Logger

	// Private marks the listeners as on a private (Flycast) address:
	// requests carry it (PrivateFromContext), and connections can also be
	// handed to a port with Deliver.
	Private bool
	// Divert, for a Private manager, names the ports it must not bind
	// (another listener holds them on a wildcard address and hands their
	// connections over with Deliver); nil binds every port.
	Divert func(port int) bool
	// WrapListener, if set, wraps every listener this manager binds
	// (before TLS), so that connections for a Flycast address can be taken
	// out of it.
	WrapListener func(net.Listener) net.Listener

	mu        sync.Mutex // guards listeners and closed
	listeners map[int]*listener
	closed    bool
	wg        sync.WaitGroup

	freshMu sync.Mutex        // guards fresh
	fresh   map[net.Conn]bool // HTTP connections whose first request has not reached the handler
}

// connKey is the context key of a request's connection.
type connKey struct{}

// served takes c (and, through TLS, the connection under it, which is the
// one Deliver handed over) out of fresh.
func (m *Manager) served(c net.Conn) {
	m.freshMu.Lock()
	defer m.freshMu.Unlock()
	delete(m.fresh, c)
	if tc, ok := c.(*tls.Conn); ok {
		delete(m.fresh, tc.NetConn())
	}
}

type listener struct {
	app     string
	svc     Service
	port    Port
	ln      net.Listener
	httpSrv *http.Server
	cancel  context.CancelFunc
	conns   sync.WaitGroup
}

// ErrPortInUse is wrapped when another app already has a port.
var ErrPortInUse = types.NewError(types.ErrConflict, "port already used by another app")

// Ports expands a service's ports into single port numbers.
func (s Service) ports() (map[int]Port, error) {
	out := map[int]Port{}
	for _, p := range s.Ports {
		lo, hi := p.Port, p.Port
		if p.Port == 0 {
			lo, hi = p.StartPort, p.EndPort
		}
		if lo < 1 || hi > 65535 || lo > hi {
			return nil, fmt.Errorf("ports %d..%d: want 1..65535, start_port <= end_port", lo, hi)
		}
		if hi-lo >= 4096 {
			return nil, fmt.Errorf("ports %d..%d: a range may hold at most 4096 ports", lo, hi)
		}
		switch p.ProxyProtoVersion {
		case "", "v1", "v2":
		default:
			return nil, fmt.Errorf("proxy_proto_options.version %q: want v1 or v2", p.ProxyProtoVersion)
		}
		for _, h := range p.Handlers {
			switch h {
			case HandlerTLS, HandlerHTTP, HandlerProxyProto, HandlerPGTLS:
			default:
				return nil, fmt.Errorf("port %d: unknown handler %q (tls, http, proxy_proto, pg_tls)", lo, h)
			}
		}
		if slices.Contains(p.Handlers, HandlerPGTLS) && (slices.Contains(p.Handlers, HandlerTLS) || slices.Contains(p.Handlers, HandlerHTTP)) {
			return nil, fmt.Errorf("port %d: pg_tls does its own TLS for Postgres clients: use it without tls and http", lo)
		}
		for n := lo; n <= hi; n++ {
			if _, dup := out[n]; dup {
				return nil, fmt.Errorf("port %d given twice", n)
			}
			out[n] = p
		}
	}
	return out, nil
}

// Set makes the app's listeners match services: ports no longer asked for
// are closed (their open connections finish), new ones are bound, and
// unchanged ones keep listening. If a port cannot be bound, the ports this
// call bound are closed again and the error names the port.
func (m *Manager) Set(app string, services []Service) error {
	want := map[int]*listener{}
	for i, s := range services {
		ps, err := s.ports()
		if err != nil {
			return fmt.Errorf("app %s services[%d]: %w", app, i, err)
		}
		for n, p := range ps {
			if _, dup := want[n]; dup {
				return fmt.Errorf("app %s: port %d given by two services", app, n)
			}
			want[n] = &listener{app: app, svc: s, port: p}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("tcp proxy is closed")
	}
	if m.listeners == nil {
		m.listeners = map[int]*listener{}
	}
	var opened []*listener
	for n, l := range want {
		old := m.listeners[n]
		if old != nil && old.app != app {
			m.closeAll(opened)
			return fmt.Errorf("app %s port %d: %w (%s)", app, n, ErrPortInUse, old.app)
		}
		if old != nil && sameConfig(old, l) {
			want[n] = old
			continue
		}
		if old != nil { // config changed: rebind
			old.stop()
			delete(m.listeners, n)
		}
		ln, err := m.bind(n)
		if err != nil {
			m.closeAll(opened)
			return fmt.Errorf("app %s: bind port %d: %w", app, n, err)
		}
		l.ln = ln
		opened = append(opened, l)
	}
	for n, l := range m.listeners {
		if l.app == app && want[n] != l {
			l.stop()
			delete(m.listeners, n)
		}
	}
	for _, l := range opened {
		m.listeners[l.ln.Addr().(*net.TCPAddr).Port] = l
		m.start(l)
	}
	return nil
}

// bind listens on one port: for a Private manager an inbox (bound to the
// port unless Divert says not to), else a plain listener, wrapped.
func (m *Manager) bind(n int) (net.Listener, error) {
	if m.Private && m.Divert != nil && m.Divert(n) {
		return newInbox(nil, &net.TCPAddr{IP: net.ParseIP(m.ListenHost), Port: n}), nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(m.ListenHost, strconv.Itoa(n)))
	if err != nil {
		return nil, err
	}
	if m.Private {
		return newInbox(ln, ln.Addr()), nil
	}
	if m.WrapListener != nil {
		ln = m.WrapListener(ln)
	}
	return ln, nil
}

// Deliver hands a connection accepted elsewhere to the listener of port,
// as if that listener had accepted it. It reports false (and leaves c to
// the caller) when this Private manager has no such port.
func (m *Manager) Deliver(port int, c net.Conn) bool {
	m.mu.Lock()
	l := m.listeners[port]
	m.mu.Unlock()
	if l == nil {
		return false
	}
	in, ok := l.ln.(*inbox)
	if !ok {
		return false
	}
	if slices.Contains(l.port.Handlers, HandlerHTTP) && m.HTTP != nil {
		// Fresh from now, not from when the server registers it: Shutdown
		// must wait for it from the moment it was handed over.
		m.freshMu.Lock()
		if m.fresh == nil {
			m.fresh = map[net.Conn]bool{}
		}
		m.fresh[c] = true
		m.freshMu.Unlock()
	}
	in.hand(c)
	return true
}

func sameConfig(a, b *listener) bool {
	return a.svc.InternalPort == b.svc.InternalPort && a.svc.IdleTimeout == b.svc.IdleTimeout &&
		slices.Equal(a.port.Handlers, b.port.Handlers) && a.port.ProxyProtoVersion == b.port.ProxyProtoVersion
}

func (m *Manager) closeAll(ls []*listener) {
	for _, l := range ls {
		l.ln.Close()
	}
}

// Remove closes all of an app's listeners.
func (m *Manager) Remove(app string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, l := range m.listeners {
		if l.app == app {
			l.stop()
			delete(m.listeners, n)
		}
	}
}

// Ports returns the ports bound for an app, sorted.
func (m *Manager) Ports(app string) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for n, l := range m.listeners {
		if l.app == app {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Close closes every listener, cuts the connections and waits for them to
// end.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	for n, l := range m.listeners {
		l.stop()
		delete(m.listeners, n)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// Shutdown closes every listener as Close does, but first lets the
// connections already handed over (Deliver) be accepted, and lets the
// requests and connections in flight finish until ctx ends (then cuts
// them). A daemon that hands its work to another (a reload) uses it.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	ls := make([]*listener, 0, len(m.listeners))
	for n, l := range m.listeners {
		ls = append(ls, l)
		delete(m.listeners, n)
	}
	m.mu.Unlock()
	for _, l := range ls {
		if in, ok := l.ln.(*inbox); ok {
			in.settle()
		}
		l.ln.Close()
	}
	// http.Server.Shutdown drops, unanswered, a request it reads after it
	// began: first let the connections accepted read their first request
	// (for up to freshWait).
	wait := time.NewTimer(freshWait)
	defer wait.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		m.freshMu.Lock()
		n := len(m.fresh)
		m.freshMu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-wait.C:
			waiting = false
		case <-ctx.Done():
			waiting = false
		}
	}
	var wg sync.WaitGroup
	for _, l := range ls {
		if l.httpSrv != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if l.httpSrv.Shutdown(ctx) != nil {
					l.httpSrv.Close()
				}
			}()
		}
	}
	wg.Wait()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, l := range ls {
			l.cancel() // raw connections end
			if l.httpSrv != nil {
				l.httpSrv.Close()
			}
		}
		<-done
		return fmt.Errorf("tcp proxy shutdown: connections still open: %w", ctx.Err())
	}
}

// freshWait bounds how long Shutdown waits for accepted HTTP connections
// to send their first request.
const freshWait = 5 * time.Second

func (l *listener) stop() {
	l.ln.Close()
	if l.httpSrv != nil {
		l.httpSrv.Close()
	}
	l.cancel()
}

func (m *Manager) log() *slog.Logger {
	if m.Log == nil {
		return slog.Default()
	}
	return m.Log
}

func dur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// PrivateFromContext reports whether a request came in on a Private
// (Flycast) listener (types.PrivateListener).
func PrivateFromContext(ctx context.Context) bool { return types.PrivateListener(ctx) }

// AppFromContext returns the app whose `http` port a request came in on
// (types.ListenerApp).
func AppFromContext(ctx context.Context) (string, bool) { return types.ListenerApp(ctx) }

func (m *Manager) start(l *listener) {
	base := types.WithListener(context.Background(), l.app, m.Private)
	ctx, cancel := context.WithCancel(base)
	l.cancel = cancel
	ln := l.ln
	if slices.Contains(l.port.Handlers, HandlerTLS) {
		var cfg *tls.Config
		if m.TLSConfig != nil {
			cfg = m.TLSConfig(l.app)
		}
		if cfg == nil {
			m.log().Error("tls handler without a certificate; closing port", "app", l.app, "port", ln.Addr())
			ln.Close()
			return
		}
		ln = tls.NewListener(ln, cfg)
	}
	if slices.Contains(l.port.Handlers, HandlerHTTP) && m.HTTP != nil {
		l.httpSrv = &http.Server{
			// A connection stays fresh until its first request reaches
			// the handler: past the server's own check for a shutdown.
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
					m.served(c)
				}
				m.HTTP.ServeHTTP(w, r)
			}),
			ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       dur(l.svc.IdleTimeout, dur(m.IdleTimeout, 10*time.Minute)),
			BaseContext:       func(net.Listener) context.Context { return ctx },
			// Close and Shutdown wait for every connection: Serve adds
			// one before it returns, so m.wg is not at zero then.
			ConnState: func(c net.Conn, st http.ConnState) {
				m.freshMu.Lock()
				if st == http.StateNew {
					if m.fresh == nil {
						m.fresh = map[net.Conn]bool{}
					}
					m.fresh[c] = true
					m.freshMu.Unlock()
				} else {
					m.freshMu.Unlock()
					if st == http.StateClosed || st == http.StateHijacked {
						m.served(c)
					}
				}
				switch st {
				case http.StateNew:
					m.wg.Add(1)
				case http.StateClosed, http.StateHijacked:
					m.wg.Done()
				}
			},
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			_ = l.httpSrv.Serve(ln)
		}()
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					m.log().Warn("tcp accept", "app", l.app, "port", l.ln.Addr(), "err", err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				return
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.forward(ctx, l, c)
			}()
		}
	}()
}

func (m *Manager) forward(ctx context.Context, l *listener, c net.Conn) {
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, dur(m.HandshakeTimeout, 10*time.Second))
	defer cancel()
	raw := c
	var cancelReq []byte
	if slices.Contains(l.port.Handlers, HandlerPGTLS) {
		tc, cr, err := m.pgTLS(hctx, l, c)
		if err != nil {
			m.log().Debug("pg_tls", "app", l.app, "client", c.RemoteAddr(), "err", err)
			return
		}
		if tc != nil {
			defer tc.Close()
			c = tc
		}
		cancelReq = cr
	} else if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
		if err := tc.HandshakeContext(hctx); err != nil {
			m.log().Debug("tls handshake", "app", l.app, "client", c.RemoteAddr(), "err", err)
			return
		}
	}
	var b net.Conn
	var addr string
	if cp, ok := m.Picker.(ConnPicker); ok {
		var c net.Conn
		var release func()
		var err error
		if sp, ok := m.Picker.(ServiceConnPicker); ok {
			c, release, err = sp.PickConnService(hctx, l.app, l.svc.Key, l.svc.InternalPort)
		} else {
			c, release, err = cp.PickConn(hctx, l.app, l.svc.InternalPort)
		}
		if err != nil {
			m.log().Warn("no machine for tcp connection", "app", l.app, "port", l.ln.Addr(), "err", err)
			return
		}
		defer release()
		b, addr = c, c.RemoteAddr().String()
	} else {
		var a string
		var release func()
		var err error
		if sp, ok := m.Picker.(ServicePicker); ok {
			a, release, err = sp.PickService(hctx, l.app, l.svc.Key, l.svc.InternalPort)
		} else {
			a, release, err = m.Picker.Pick(hctx, l.app, l.svc.InternalPort)
		}
		if err != nil {
			m.log().Warn("no machine for tcp connection", "app", l.app, "port", l.ln.Addr(), "err", err)
			return
		}
		defer release()
		d := net.Dialer{Timeout: dur(m.DialTimeout, 5*time.Second), KeepAlive: 30 * time.Second}
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			m.log().Warn("dial machine", "app", l.app, "addr", a, "err", err)
			return
		}
		b, addr = c, a
	}
	defer b.Close()
	if slices.Contains(l.port.Handlers, HandlerProxyProto) {
		v := 1
		if l.port.ProxyProtoVersion == "v2" {
			v = 2
		}
		if _, err := proxyproto.FromConn(v, raw).WriteTo(b); err != nil {
			m.log().Warn("proxy protocol header", "app", l.app, "addr", addr, "err", err)
			return
		}
	}
	if cancelReq != nil { // a Postgres cancel request: pass it on, nothing comes back
		_ = b.SetWriteDeadline(time.Now().Add(dur(m.DialTimeout, 5*time.Second)))
		_, _ = b.Write(cancelReq)
		return
	}
	Pipe(ctx, c, b, dur(l.svc.IdleTimeout, dur(m.IdleTimeout, 10*time.Minute)))
}

// pgTLS runs a pg_tls port's start: the app's certificate, then
// pgTLSConn.
func (m *Manager) pgTLS(ctx context.Context, l *listener, c net.Conn) (*tls.Conn, []byte, error) {
	var cfg *tls.Config
	if m.TLSConfig != nil {
		cfg = m.TLSConfig(l.app)
	}
	if cfg == nil {
		_, _ = c.Write(pgError("08006", "the proxy has no certificate for this app"))
		return nil, nil, errors.New("pg_tls handler without a certificate")
	}
	return pgTLSConn(ctx, c, cfg)
}

// Pipe copies bytes both ways between a and b until both directions end,
// ctx ends, or nothing moves either way for idle. A direction that ends
// half-closes the other side's write, so protocols that shut down one way
// keep working.
func Pipe(ctx context.Context, a, b net.Conn, idle time.Duration) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		closeWrite(dst)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	tick := time.NewTicker(max(idle/4, 5*time.Millisecond))
	defer tick.Stop()
	ended := 0
	stop := ctx.Done()
	for ended < 2 {
		select {
		case <-done:
			ended++
		case <-stop:
			stop = nil
			a.Close()
			b.Close()
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > idle {
				a.Close()
				b.Close()
			}
		}
	}
}

func closeWrite(c net.Conn) {
	switch c := c.(type) {
	case interface{ CloseWrite() error }:
		if c.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}
