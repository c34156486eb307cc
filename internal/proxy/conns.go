package proxy

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// Client connection limits of Serve's listener and of listeners wrapped
// with LimitListener (HTTPS). Every open connection, on the fast path or
// handed over to net/http, counts against MaxConns and against
// MaxConnsPerIP for its client address until it is closed; a connection
// over either limit is closed at once (with a 503 on the plain HTTP
// port), the refusal is counted (ConnStats) and logged at most once per
// limitLogEvery, so that idle or slow clients cannot take every file
// descriptor the daemon shares with its API.

// Default connection limits.
const (
	DefaultMaxConns      = 16384
	DefaultMaxConnsPerIP = 1024
)

const limitLogEvery = 10 * time.Second

// connLimits counts refusals.
type connLimits struct {
	refused      atomic.Uint64 // over MaxConns
	refusedPerIP atomic.Uint64 // over MaxConnsPerIP
	lastLog      atomic.Int64  // unix nanoseconds of the last log line
}

// ConnStats are Serve's client connection counts.
type ConnStats struct {
	Open         int    // connections open now
	Refused      uint64 // refused because MaxConns were open
	RefusedPerIP uint64 // refused because MaxConnsPerIP were open from the client's address
}

// ConnStats returns Serve's connection counts (for metrics).
func (p *Proxy) ConnStats() ConnStats {
	p.srvMu.Lock()
	open := p.open
	p.srvMu.Unlock()
	return ConnStats{Open: open, Refused: p.limits.refused.Load(), RefusedPerIP: p.limits.refusedPerIP.Load()}
}

// admit counts a new connection of Serve against the limits and
// registers it, or answers 503 and closes it (an HTTPS connection of
// ServeTLS is closed without an answer); it reports whether the
// connection is admitted.
func (p *Proxy) admit(fc *fconn) bool {
	if !p.count(fc) {
		if fc.wire != nil {
			_ = fc.wire.Conn.Close()
		} else {
			p.refuse(fc.c)
		}
		return false
	}
	p.srvMu.Lock()
	p.conns[fc] = struct{}{}
	p.srvMu.Unlock()
	return true
}

// count counts a new connection against the limits, or counts and logs
// its refusal; it reports whether the connection may be served.
func (p *Proxy) count(fc *fconn) bool {
	fc.ip, _, _ = net.SplitHostPort(fc.c.RemoteAddr().String())
	p.srvMu.Lock()
	overAll := p.MaxConns > 0 && p.open >= p.MaxConns
	overIP := p.MaxConnsPerIP > 0 && p.perIP[fc.ip] >= p.MaxConnsPerIP
	if !overAll && !overIP {
		if p.perIP == nil {
			p.perIP = map[string]int{}
		}
		p.perIP[fc.ip]++
		p.open++
		p.openN.Store(int64(p.open))
		p.raiseBusyPeakLocked()
		fc.counted = true
	}
	open, fromIP := p.open, p.perIP[fc.ip]
	p.srvMu.Unlock()
	if !overAll && !overIP {
		return true
	}
	if overIP {
		p.limits.refusedPerIP.Add(1)
	} else {
		p.limits.refused.Add(1)
	}
	now := time.Now().UnixNano()
	if last := p.limits.lastLog.Load(); now-last >= int64(limitLogEvery) && p.limits.lastLog.CompareAndSwap(last, now) {
		if overIP {
			p.log.Warn("proxy: refusing connections from a client with too many open; raise Proxy.MaxConnsPerIP if it is legitimate",
				"client", fc.ip, "open_from_client", fromIP, "limit_per_ip", p.MaxConnsPerIP, "refused_per_ip_total", p.limits.refusedPerIP.Load())
		} else {
			p.log.Warn("proxy: refusing connections: too many open; raise Proxy.MaxConns or the file descriptor limit",
				"open", open, "limit", p.MaxConns, "refused_total", p.limits.refused.Load())
		}
	}
	return false
}

// refuse answers a connection over the limits with 503 and closes it (in
// the background: the close lingers briefly so that the answer is not
// destroyed by a reset, see lingeringClose).
func (p *Proxy) refuse(c net.Conn) {
	const msg = "hangar proxy: too many open connections; retry later\n"
	go func() {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nRetry-After: 1\r\nServer: " + serverName +
			"\r\nContent-Length: " + strconv.Itoa(len(msg)) + "\r\n\r\n" + msg))
		lingeringClose(c)
	}()
}

// connDone stops counting a connection against the limits (once).
func (p *Proxy) connDone(fc *fconn) {
	p.srvMu.Lock()
	defer p.srvMu.Unlock()
	if !fc.counted {
		return
	}
	fc.counted = false
	p.open--
	p.openN.Store(int64(p.open))
	if n := p.perIP[fc.ip] - 1; n > 0 {
		p.perIP[fc.ip] = n
	} else {
		delete(p.perIP, fc.ip)
	}
}

// LimitListener returns ln with its connections counted against the same
// MaxConns and MaxConnsPerIP as Serve's (for a listener served by
// net/http, such as the HTTPS one): a connection over either limit is
// closed at once (no answer: it may expect TLS), counted and logged.
func (p *Proxy) LimitListener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, p: p}
}

type limitListener struct {
	net.Listener
	p *Proxy
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		fc := &fconn{c: c}
		if l.p.count(fc) {
			return &trafficConn{Conn: c, done: func() { l.p.connDone(fc) }}, nil
		}
		_ = c.Close()
	}
}
