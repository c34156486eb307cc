package proxy

import (
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// Client connection limits of Serve's listener. Every open connection,
// on the fast path or handed over to net/http, counts against MaxConns
// and against MaxConnsPerIP for its client address until it is closed; a
// connection over either limit gets an immediate 503 and is closed, the
// refusal is counted (ConnStats) and logged at most once per
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

// admit counts a new connection against the limits and registers it, or
// refuses and closes it; it reports whether the connection is admitted.
func (p *Proxy) admit(fc *fconn) bool {
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
		fc.counted = true
		p.conns[fc] = struct{}{}
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
	p.refuse(fc.c)
	now := time.Now().UnixNano()
	if last := p.limits.lastLog.Load(); now-last >= int64(limitLogEvery) && p.limits.lastLog.CompareAndSwap(last, now) {
		if overIP {
			p.log.Warn("proxy: refusing connections from a client with too many open (answering 503); raise Proxy.MaxConnsPerIP if it is legitimate",
				"client", fc.ip, "open_from_client", fromIP, "limit_per_ip", p.MaxConnsPerIP, "refused_per_ip_total", p.limits.refusedPerIP.Load())
		} else {
			p.log.Warn("proxy: refusing connections: too many open (answering 503); raise Proxy.MaxConns or the file descriptor limit",
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
	if n := p.perIP[fc.ip] - 1; n > 0 {
		p.perIP[fc.ip] = n
	} else {
		delete(p.perIP, fc.ip)
	}
}
