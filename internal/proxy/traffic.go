package proxy

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Client traffic of the connections net/http serves (HTTPS, and the
// plain HTTP connections the fast path hands over: WebSockets, statics,
// compression, fly-replay): a trafficConn counts the bytes read from and
// written to the client, and its close, for the app of its first request
// (as the fast path counts its own, fast.go's countBytes). Bytes that pass
// before the app is known (the TLS handshake, the first request's head)
// are held and added when it is.

// trafficConn is a client connection counted for one app.
type trafficConn struct {
	net.Conn
	app atomic.Pointer[appStats]

	mu              sync.Mutex // guards pendIn and pendOut while app is nil
	pendIn, pendOut uint64

	closeOnce sync.Once
	done      func() // the connection limits' release; may be nil
}

func (c *trafficConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.add(uint64(n), 0)
	}
	return n, err
}

func (c *trafficConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.add(0, uint64(n))
	}
	return n, err
}

// add counts bytes in and out for the connection's app, or holds them
// until it is known.
func (c *trafficConn) add(in, out uint64) {
	a := c.app.Load()
	if a == nil {
		c.mu.Lock()
		if a = c.app.Load(); a == nil {
			c.pendIn += in
			c.pendOut += out
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
	if in > 0 {
		a.dataIn.Add(in)
	}
	if out > 0 {
		a.dataOut.Add(out)
	}
}

// attach makes a the connection's app, unless it has one; connected says
// whether to count a new client connection for it (false when the fast
// path counted it before handing it over).
func (c *trafficConn) attach(a *appStats, connected bool) {
	if c.app.Load() != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.app.Load() != nil {
		return
	}
	if connected {
		a.connects.Add(1)
	}
	a.dataIn.Add(c.pendIn)
	a.dataOut.Add(c.pendOut)
	c.pendIn, c.pendOut = 0, 0
	c.app.Store(a)
}

func (c *trafficConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if a := c.app.Load(); a != nil {
			a.disconnects.Add(1)
		}
		if c.done != nil {
			c.done()
		}
	})
	return err
}

// NetConn returns the connection it counts.
func (c *trafficConn) NetConn() net.Conn { return c.Conn }

type trafficKey struct{}

// ConnContext is an http.Server's ConnContext for the servers that serve
// the proxy (Serve sets it on its fallback server; the daemon on its
// HTTPS server): it finds the counted connection under c (a *tls.Conn's
// too) so that requests count its traffic for their app.
func (p *Proxy) ConnContext(ctx context.Context, c net.Conn) context.Context {
	for c != nil {
		if tc, ok := c.(*trafficConn); ok {
			return context.WithValue(ctx, trafficKey{}, tc)
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return ctx
}

// countConn counts the traffic of the connection a request came on for
// app name, if it is not counted for an app yet.
func (p *Proxy) countConn(ctx context.Context, name string) {
	if p.NoStats || name == "" {
		return
	}
	tc, _ := ctx.Value(trafficKey{}).(*trafficConn)
	if tc == nil || tc.app.Load() != nil {
		return
	}
	p.mu.Lock()
	a := p.apps[name]
	p.mu.Unlock()
	if a != nil {
		tc.attach(a.stats, true)
	}
}

// machineDialer is the net/http transport's dialer to machines.
var machineDialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// dialMachine is the net/http transport's DialContext: a connection opened
// for a request counts for the machine it was opened to (its connect time,
// and its connect and close), as the fast path's do.
func (p *Proxy) dialMachine(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	c, err := machineDialer.DialContext(ctx, network, addr)
	if err != nil || p.NoStats {
		return c, err
	}
	if d, ok := ctx.Value(dialKey{}).(dialFor); ok && d.addr == addr {
		d.s.connect.observe(time.Since(start))
		d.s.connects.Add(1)
		c = &backendConn{Conn: c, s: d.s}
	}
	return c, nil
}

// dialKey is the context key of the machine a request's transport dials.
type dialKey struct{}

// dialFor is a machine's address and counters.
type dialFor struct {
	addr string
	s    *machineStats
}
