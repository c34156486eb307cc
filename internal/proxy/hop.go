package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// The plain hop between hosts (docs/edge.md, "The plain hop"). On a
// cluster with the WireGuard mesh, an edge's fast path forwards a request
// for another host's machine as plain HTTP/1.1 over a pooled keep-alive
// connection to that host's hop listener (its address on the mesh), and
// the owner serves it on its own fast path. No TLS: WireGuard already
// authenticates the peer host and encrypts the link, and the hop listener
// accepts a connection only from another host's own mesh address
// (HopListener's allow), so what a connection carries was sent by
// another host's proxy.
//
// Trust is per connection: only on a hop connection are the Hangar-Edge-*
// headers read and the edge's forwarded headers (client address,
// Fly-Region, Fly-Forwarded-Port, Fly-Request-Id) kept; on every other
// listener a client's Hangar-Edge-* headers are dropped (headers.go), as
// they are on the net/http path. A hop request is routed only to this
// host's machines (routing.local), so it is never forwarded again.

// HopListener wraps ln, a plain listener on this host's mesh address, for
// Proxy.Serve: a connection is served only when allow accepts its source
// address (another host's mesh address); others are closed at once. Its
// connections are served as hop connections.
func HopListener(ln net.Listener, allow func(netip.Addr) bool, refused func(src netip.Addr)) net.Listener {
	return &hopListener{Listener: ln, allow: allow, refused: refused}
}

type hopListener struct {
	net.Listener
	allow   func(netip.Addr) bool
	refused func(netip.Addr)
}

func (l *hopListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteAddr(c)
		if l.allow != nil && l.allow(src) {
			return c, nil
		}
		_ = c.Close()
		if l.refused != nil {
			l.refused(src)
		}
	}
}

// remoteAddr is a connection's source address (unmapped), or the zero Addr.
func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// isHop reports whether ln serves hop connections.
func isHop(ln net.Listener) bool {
	_, ok := ln.(*hopListener)
	return ok
}

// hopRequest reads the routing of a request on a hop connection: the app
// (Hangar-Edge-App, else its Host), the machine the edge chose or the
// client forced, and the edge's request id. Only this host's machines.
func (cs *connState) hopRequest() (name string, rt routing, rid string) {
	r := &cs.req
	rt.local = true
	for _, h := range r.headers {
		switch {
		case eqFold(h.name, "hangar-edge-app"):
			name = string(h.value)
		case eqFold(h.name, "hangar-edge-prefer"):
			rt.preferInstance = string(h.value)
		case eqFold(h.name, "hangar-edge-force"):
			rt.forceInstance = string(h.value)
		case eqFold(h.name, "fly-request-id"):
			rid = string(h.value)
		}
	}
	if name == "" {
		name = cs.appFor(r.host)
	}
	if rid == "" {
		cs.newRequestID()
		rid = cs.rid
	}
	return name, rt, rid
}

// dropHopRequestHeader reports the headers of a hop request not passed to
// the machine: hop-by-hop ones, those its Connection header nominates and
// the Hangar-Edge-* headers. The forwarded headers are the edge's, kept.
func dropHopRequestHeader(name []byte, conn [][]byte) bool {
	return hopByHop.has(name) || edgeOnly.has(name) || nominated(name, conn)
}

var edgeOnly = newNameSet(edgeHeaders)

// writeEdgeHeaders pins a request the edge forwards on the plain hop: the
// app, and the machine chosen (or forced by the client); none for "that
// host wakes one".
func writeEdgeHeaders(w *bufio.Writer, m *machine, rt routing) {
	b := m.b // never changes for another host's entry (remoteMachineLocked)
	w.WriteString(hdrEdgeApp + ": ")
	w.WriteString(b.App)
	w.WriteString("\r\n")
	switch {
	case b.MachineID == "":
	case rt.forceInstance == b.MachineID:
		w.WriteString(hdrEdgeForce + ": ")
		w.WriteString(b.MachineID)
		w.WriteString("\r\n")
	default:
		w.WriteString(hdrEdgePrefer + ": ")
		w.WriteString(b.MachineID)
		w.WriteString("\r\n")
	}
}

// hopDialer connects to other hosts' hop listeners (HopDialer).
var hopDialer = HopDialer(netip.Addr{})

// hopUserTimeout is how long a request written on a hop connection may go
// unacknowledged by the other host.
const hopUserTimeout = 3 * time.Second

// HopDialer returns a dialer of other hosts' hop listeners, from local
// (this host's own mesh address, the one they accept; any if invalid): a
// dead host fails a new connection within a second, an idle one within
// about three (keep-alive probes), one with a request unacknowledged
// within three (TCP_USER_TIMEOUT).
func HopDialer(local netip.Addr) *net.Dialer {
	d := &net.Dialer{Timeout: time.Second,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: time.Second, Interval: time.Second, Count: 2},
		Control:         func(_, _ string, c syscall.RawConn) error { return hopSockopt(c) }}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	return d
}

// getHopConn is getConn for another host's machine: a pooled connection
// to its host's hop listener (one pool per host).
func (p *Proxy) getHopConn(m *machine) (*bconn, bool, error) {
	rh := m.remote
	now := time.Now()
	p.mu.Lock()
	for len(rh.pool) > 0 {
		bc := rh.pool[len(rh.pool)-1]
		rh.pool[len(rh.pool)-1] = nil
		rh.pool = rh.pool[:len(rh.pool)-1]
		if now.Sub(bc.used) < p.backendIdle {
			p.mu.Unlock()
			return bc, true, nil
		}
		_ = bc.c.Close()
	}
	addr, dial := rh.hop, p.edge.HopDial
	p.mu.Unlock()
	if addr == "" {
		return nil, false, errors.New("the other host has no plain hop listener")
	}
	var c net.Conn
	var err error
	if dial != nil {
		c, err = dial(addr)
	} else {
		c, err = hopDialer.Dial("tcp", addr)
	}
	if err != nil {
		return nil, false, err
	}
	if !p.NoStats {
		m.stats.connect.observe(time.Since(now))
		m.stats.connects.Add(1)
	}
	return &bconn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10)}, false, nil
}

// putHopConn gives a connection back to its host's pool.
func (p *Proxy) putHopConn(m *machine, bc *bconn) {
	bc.used = time.Now()
	rh := m.remote
	p.mu.Lock()
	if len(rh.pool) < maxIdlePerMachine && p.rhosts[rh.id] == rh {
		rh.pool = append(rh.pool, bc)
		bc = nil
	}
	p.mu.Unlock()
	if bc != nil {
		_ = bc.c.Close()
	}
}

// closeHopPoolLocked closes a host's idle hop connections.
func closeHopPoolLocked(rh *remoteHost) { closePool(&rh.pool) }

// hopFailed handles a failed attempt to forward a request on the plain
// hop: the host gets no requests from this edge for DownFor; an
// idempotent request without a body whose connection failed is moved,
// once, to another machine (it reports whether to send it again, to
// rq.m).
func (p *Proxy) hopFailed(rq *request, method []byte, hasBody bool, err error) bool {
	m := rq.m
	p.mu.Lock()
	m.remote.downUntil = time.Now().Add(p.edge.DownFor)
	p.mu.Unlock()
	p.log.Warn("edge: forwarding to another host failed", "host", m.remote.id, "app", m.b.App, "machine", m.b.MachineID, "err", err)
	if rq.retried || hasBody || !idempotent(methodString(method)) {
		return false
	}
	rq.retried = true
	return p.repick(rq) != nil
}

// methodString returns the constant of a common method (no allocation).
func methodString(m []byte) string {
	for _, s := range []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete, http.MethodPost, http.MethodPatch} {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

// writeHopRequestHead writes the head of a request forwarded on the plain
// hop for this host's machine: the edge's request as it came, without
// hop-by-hop and Hangar-Edge-* headers; the forwarded headers are the
// edge's (it set them for the client: its address, Fly-Region,
// Fly-Forwarded-Port, Fly-Request-Id, X-Forwarded-*, Via).
func (cs *connState) writeHopRequestHead(w *bufio.Writer) {
	r := &cs.req
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	w.WriteString(" HTTP/1.1\r\n")
	for _, h := range r.headers {
		if dropHopRequestHeader(h.name, r.connTokens) {
			continue
		}
		w.Write(h.name)
		w.WriteString(": ")
		w.Write(h.value)
		w.WriteString("\r\n")
	}
	if r.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	w.WriteString("\r\n")
}

// hopTransport carries the net/http path's forwarded requests (and
// protocol upgrades) to other hosts' hop listeners: plain HTTP/1.1, dialled
// with EdgeOptions.HopDial.
func (p *Proxy) hopTransport() *http.Transport {
	p.hopTrOnce.Do(func() {
		p.hopTr = &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				p.mu.Lock()
				dial := p.edge.HopDial
				p.mu.Unlock()
				if dial != nil {
					return dial(addr)
				}
				return hopDialer.DialContext(ctx, network, addr)
			},
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		}
	})
	return p.hopTr
}
