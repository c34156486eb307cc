package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The fast path: each client connection is served by one goroutine that
// parses HTTP/1.1 requests itself and talks directly to pooled keep-alive
// connections to the machines, without the hand-offs between goroutines
// that net/http's server and transport make per request. Requests it does
// not handle (protocol upgrades such as WebSockets, Expect: 100-continue,
// HTTP/1.0, CONNECT and non-origin-form targets) are handed, with the
// connection, to an http.Server whose handler is the Proxy itself
// (ServeHTTP, built on httputil.ReverseProxy).

// Serve accepts connections on ln until Shutdown, serving them on the fast
// path and handing the rest to fallback (whose Handler defaults to p).
// Timeouts and the header limit are fallback's ReadHeaderTimeout,
// IdleTimeout and MaxHeaderBytes (defaults 10s, 60s, 64 KiB); a new
// connection must send its first byte within FirstByteTimeout (default
// ReadHeaderTimeout, never more than IdleTimeout).
func (p *Proxy) Serve(ln net.Listener, fallback *http.Server) error {
	return p.serve(ln, nil, fallback)
}

// ServeTLS is Serve for an HTTPS listener: each connection's goroutine
// makes the TLS handshake with config (within the fallback's
// ReadHeaderTimeout), then HTTP/1.1 (ALPN http/1.1 or none) is served on
// the fast path like plain HTTP, with X-Forwarded-Proto https, and the
// requests the fast path does not take go to fallback as Serve's do (its
// handlers see r.TLS). A connection that negotiated another protocol (h2,
// acme-tls/1) is given to fallback as it is, a *tls.Conn, so fallback
// serves HTTP/2 (it must not have HTTP/2 turned off). A failed handshake
// is logged to fallback's ErrorLog as net/http logs it ("http: TLS
// handshake error from ADDR: REASON"). Connections over the limits are
// closed without an answer; the bytes counted for an app are those on
// the wire, TLS included. fallback's TLSConfig is not used (leave it nil:
// net/http would change a config it is given while handshakes use it).
func (p *Proxy) ServeTLS(ln net.Listener, config *tls.Config, fallback *http.Server) error {
	if config == nil {
		return errors.New("hangar proxy: ServeTLS needs a TLS config (certificates)")
	}
	return p.serve(ln, config, fallback)
}

func (p *Proxy) serve(ln net.Listener, tlsConfig *tls.Config, fallback *http.Server) error {
	if fallback == nil {
		fallback = &http.Server{}
	}
	if fallback.Handler == nil {
		fallback.Handler = p
	}
	if fallback.ConnContext == nil {
		fallback.ConnContext = p.ConnContext
	}
	cfg := serveConfig{headerTimeout: fallback.ReadHeaderTimeout, idleTimeout: fallback.IdleTimeout, maxHeader: fallback.MaxHeaderBytes, hop: isHop(ln)}
	if cfg.headerTimeout <= 0 {
		cfg.headerTimeout = 10 * time.Second
	}
	if cfg.idleTimeout <= 0 {
		cfg.idleTimeout = 60 * time.Second
	}
	if cfg.maxHeader <= 0 {
		cfg.maxHeader = 64 << 10
	}
	cfg.firstByteTimeout = p.FirstByteTimeout
	if cfg.firstByteTimeout <= 0 {
		cfg.firstByteTimeout = cfg.headerTimeout
	}
	cfg.firstByteTimeout = min(cfg.firstByteTimeout, cfg.idleTimeout)
	if tlsConfig != nil {
		cfg.tls, cfg.errorLog = tlsConfig, fallback.ErrorLog
		withTLSState(fallback)
	}
	hl := &handoffListener{addr: ln.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}
	p.srvMu.Lock()
	if p.shutdown {
		p.srvMu.Unlock()
		return http.ErrServerClosed
	}
	if p.conns == nil {
		p.conns = map[*fconn]struct{}{}
	}
	p.listeners = append(p.listeners, ln)
	p.fallbacks = append(p.fallbacks, fallback)
	p.srvMu.Unlock()
	go func() { _ = fallback.Serve(hl) }()
	p.janitor.Do(func() { go p.closeIdleBackends() })
	defer hl.Close()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			p.srvMu.Lock()
			down := p.shutdown
			p.srvMu.Unlock()
			if down {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc := &fconn{c: c}
		if cfg.tls != nil {
			// The TLS runs over a counting connection: an app's traffic
			// is its bytes on the wire, and its close releases the limits.
			fc.wire = &trafficConn{Conn: c, done: func() { p.connDone(fc) }}
			fc.c = tls.Server(fc.wire, cfg.tls)
		}
		if !p.admit(fc) {
			continue
		}
		go p.serveConn(fc, hl, cfg)
	}
}

var errTooManyFiles = syscall.EMFILE

// Shutdown stops accepting, closes idle connections, waits for requests in
// flight to finish (or ctx to end) and shuts the fallback servers down.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.srvMu.Lock()
	if !p.shutdown {
		close(p.stopped)
	}
	p.shutdown = true
	p.down.Store(true)
	for _, ln := range p.listeners {
		_ = ln.Close()
	}
	fbs := p.fallbacks
	p.srvMu.Unlock()
	var errs []error
	for _, fb := range fbs {
		if err := fb.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		p.unparkAll()
		p.srvMu.Lock()
		for fc := range p.conns {
			if fc.state.Load() == connIdle {
				fc.abort()
			}
		}
		n := len(p.conns)
		p.srvMu.Unlock()
		if n == 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			p.srvMu.Lock()
			for fc := range p.conns {
				fc.abort()
			}
			p.srvMu.Unlock()
			return errors.Join(append(errs, ctx.Err())...)
		case <-t.C:
		}
	}
}

type serveConfig struct {
	headerTimeout, idleTimeout, firstByteTimeout time.Duration
	maxHeader                                    int
	hop                                          bool // another host's edge forwards on it (hop.go)
	// tls is the HTTPS listener's config (nil: plain HTTP); errorLog is
	// where failed handshakes are logged (nil: the log package's).
	tls      *tls.Config
	errorLog *log.Logger
}

const (
	connIdle int32 = iota
	connActive
	connParked // idle, without a goroutine (park.go)
)

// fconn is a client connection on the fast path.
type fconn struct {
	c     net.Conn
	state atomic.Int32
	ip    string // the client's address, as counted against MaxConnsPerIP
	// counted is set while the connection counts against the limits
	// (guarded by Proxy.srvMu).
	counted bool
	// wire is the TCP connection under an HTTPS connection's TLS (c is
	// then a *tls.Conn): it counts the traffic on the wire for the
	// connection's app, and releases the limits when it closes.
	wire *trafficConn
}

// abort closes the client connection under the connection's goroutine
// (which then ends): the TCP connection itself, so that an HTTPS one
// neither writes its close_notify nor releases its limits here (callers
// hold Proxy.srvMu; the goroutine's finish does both).
func (fc *fconn) abort() {
	if fc.wire != nil {
		_ = fc.wire.Conn.Close()
		return
	}
	_ = fc.c.Close()
}

// bconn is a keep-alive connection to a machine.
type bconn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time
}

// maxIdlePerMachine bounds the pool of idle connections to one machine;
// idleConnTTL is how long one may sit unused before it is closed
// (Proxy.backendIdle; apps close idle connections, some after 5s): it is
// not reused after that, and closeIdleBackends closes it on a timer.
const (
	maxIdlePerMachine = 512
	idleConnTTL       = 4 * time.Second
)

func (p *Proxy) getConn(m *machine) (*bconn, bool, error) {
	if m.remote != nil {
		return p.getHopConn(m)
	}
	now := time.Now()
	p.mu.Lock()
	for len(m.pool) > 0 {
		bc := m.pool[len(m.pool)-1]
		m.pool[len(m.pool)-1] = nil
		m.pool = m.pool[:len(m.pool)-1]
		if now.Sub(bc.used) < p.backendIdle {
			p.mu.Unlock()
			return bc, true, nil
		}
		_ = bc.c.Close()
	}
	addr := m.b.Addr
	p.mu.Unlock()
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, false, err
	}
	if !p.NoStats {
		m.stats.connect.observe(time.Since(now))
		m.stats.connects.Add(1)
		c = &backendConn{Conn: c, s: m.stats}
	}
	return &bconn{c: c, br: bufio.NewReaderSize(c, 8<<10), bw: bufio.NewWriterSize(c, 8<<10)}, false, nil
}

// backendConn counts its close as a disconnect from the machine.
type backendConn struct {
	net.Conn
	s    *machineStats
	once sync.Once
}

func (c *backendConn) Close() error {
	c.once.Do(func() { c.s.disconnects.Add(1) })
	return c.Conn.Close()
}

var dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

func (p *Proxy) putConn(m *machine, bc *bconn) {
	if m.remote != nil {
		p.putHopConn(m, bc)
		return
	}
	bc.used = time.Now()
	p.mu.Lock()
	if len(m.pool) < maxIdlePerMachine && !m.draining && m.present {
		m.pool = append(m.pool, bc)
		bc = nil
	}
	p.mu.Unlock()
	if bc != nil {
		_ = bc.c.Close()
	}
}

// closeIdleBackends closes, every backendIdle until Shutdown, the pooled
// connections to machines that have been idle for backendIdle, so that
// neither the proxy nor the apps hold connections nobody uses.
func (p *Proxy) closeIdleBackends() {
	t := time.NewTicker(p.backendIdle)
	defer t.Stop()
	for {
		select {
		case <-p.stopped:
			return
		case now := <-t.C:
			p.reapIdleBackends(now)
			p.srvMu.Lock()
			open := p.open
			p.srvMu.Unlock()
			p.releaseMemory(open, open-int(p.parkedN.Load()))
		}
	}
}

// reapIdleBackends closes the pooled connections idle for backendIdle at
// now and returns how many it closed.
func (p *Proxy) reapIdleBackends(now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.apps {
		for _, m := range a.machines {
			n += reapPool(&m.pool, now, p.backendIdle)
		}
	}
	for _, rh := range p.rhosts {
		n += reapPool(&rh.pool, now, p.backendIdle)
	}
	return n
}

// reapPool closes the connections of pool idle for idle at now, keeps the
// others, and returns how many it closed.
func reapPool(pool *[]*bconn, now time.Time, idle time.Duration) int {
	n := 0
	keep := (*pool)[:0]
	for _, bc := range *pool {
		if now.Sub(bc.used) >= idle {
			_ = bc.c.Close()
			n++
		} else {
			keep = append(keep, bc)
		}
	}
	clear((*pool)[len(keep):])
	*pool = keep
	return n
}

// closePool closes every connection of pool and empties it.
func closePool(pool *[]*bconn) {
	for _, bc := range *pool {
		_ = bc.c.Close()
	}
	*pool = nil
}

// closePoolLocked closes a machine's idle connections.
func closePoolLocked(m *machine) { closePool(&m.pool) }

// handoffListener gives connections to the fallback http.Server.
type handoffListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

// replayConn replays the bytes already read from a connection before the
// rest of it.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// NetConn returns the connection under the replayed bytes.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// connState is the per-connection state of the fast path.
type connState struct {
	p   *Proxy
	fc  *fconn
	hl  *handoffListener
	cfg serveConfig
	// wire is fc.wire: set for an HTTPS connection (ServeTLS).
	wire *trafficConn
	// woke is set when a parked connection is given back a goroutine
	// (park.go): wokeReadable or wokeExpired; parkDeadline is when its
	// idle timeout ends.
	woke         int
	parkDeadline time.Time
	parkFD       int32 // its file descriptor while parked
	// detached: parked without its net.Conn (park_linux.go); the
	// goroutine that wakes it calls reattach first.
	detached bool
	// br, bw and buf are taken from pools when a request's first byte
	// arrives and given back while the connection waits idle (see
	// waitRequest): an idle connection holds a few hundred bytes, not
	// the 40 KiB of a busy one.
	br       *bufio.Reader
	bw       *bufio.Writer
	bufp     *[]byte
	buf      []byte
	clientIP string
	head     []byte
	req      reqHead
	resp     respHead
	dl       dlReader
	rhead    []byte
	first    [1]byte // the first byte of a request, read without buffers
	// rid is the current request's Fly-Request-Id, in ridBuf (see
	// newRequestID).
	rid    string
	ridBuf []byte
	// xff, via and rvia gather the X-Forwarded-For and Via chains of the
	// request and of the response (writeRequestHead, writeResponseHead).
	xff, via, rvia []byte
	// lastHost and lastApp: see appFor.
	lastHost, lastApp string
	// replayed is set when the app answered fly-replay to a request
	// without a body: the connection goes to net/http with the request.
	replayed bool
	// closeNow: the connection ends with nothing unread (see run).
	closeNow bool
	// For the counters (metrics.go): the machine that served the last
	// request; whether the connection was counted, for which app; the
	// bytes read from and written to the client, and how many of them
	// were added to the app's counters.
	served          *machine
	counted         bool
	app             *app
	out             countingWriter
	inSeen, outSeen uint64
}

// countingWriter counts the bytes written to the client connection.
type countingWriter struct {
	c net.Conn
	n uint64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.c.Write(b)
	w.n += uint64(n)
	return n, err
}

// countBytes adds the bytes read and written since the last call to a's
// counters.
func (cs *connState) countBytes(a *app) {
	if cs.wire != nil {
		return // the wire under the TLS counts them (attach)
	}
	if in := cs.dl.n; in != cs.inSeen {
		a.stats.dataIn.Add(in - cs.inSeen)
		cs.inSeen = in
	}
	if out := cs.out.n; out != cs.outSeen {
		a.stats.dataOut.Add(out - cs.outSeen)
		cs.outSeen = out
	}
}

// bufferHold is how long a keep-alive connection keeps its buffers while
// it waits for its next request; clients that send requests back to back
// never give them up. When more than crowdedBusy connections are busy
// (open and not parked), the hold is crowdedHold: a crowd of clients
// that each sent one request is parked within a fraction of a second,
// instead of all holding buffers and goroutines for a second (memory the
// runtime keeps: goroutines are reused, never freed).
const (
	bufferHold  = time.Second
	crowdedBusy = 1024
	crowdedHold = 50 * time.Millisecond
)

// takeBuffers gets the connection's buffers from the pools.
func (cs *connState) takeBuffers() {
	cs.br = readerPool.Get().(*bufio.Reader)
	cs.bw = writerPool.Get().(*bufio.Writer)
	cs.br.Reset(&cs.dl)
	cs.bw.Reset(&cs.out)
}

// copyBuf returns the connection's copy buffer (32 KiB), taking it from
// its pool at the first body that needs it: a small body that arrived
// with its head is copied from the reader's buffer, so most requests
// never take it.
func (cs *connState) copyBuf() []byte {
	if cs.bufp == nil {
		cs.bufp = bufPool.Get().(*[]byte)
		cs.buf = *cs.bufp
	}
	return cs.buf
}

// putBuffers gives the connection's buffers back to the pools (nothing
// may be buffered in them).
func (cs *connState) putBuffers() {
	if cs.br == nil {
		return
	}
	cs.br.Reset(nil)
	cs.bw.Reset(nil)
	readerPool.Put(cs.br)
	writerPool.Put(cs.bw)
	if cs.bufp != nil {
		bufPool.Put(cs.bufp)
	}
	cs.br, cs.bw, cs.bufp, cs.buf = nil, nil, nil, nil
}

// waitRequest's outcomes.
const (
	waitGot    = iota // the first byte of a request arrived
	waitClosed        // closed, reset, or no byte within the timeout
	waitParked        // the connection was parked (park.go): stop serving it here
)

// waitRequest waits for the first byte of the next request. A new
// connection gets firstByteTimeout; a keep-alive one idleTimeout, of
// which it holds its buffers for bufferHold only; then, if the rest of
// the wait is at least parkMin, it is parked (park.go): it gives up its
// goroutine too. The buffers are taken when the byte arrives.
func (cs *connState) waitRequest(cfg serveConfig, fresh bool) int {
	c := cs.fc.c
	wait := cfg.idleTimeout
	if fresh {
		wait = cfg.firstByteTimeout
	}
	if w := cs.woke; w != 0 {
		// Back from parking: readable (or closed), or out of time.
		cs.woke = 0
		wait = time.Until(cs.parkDeadline)
		if w == wokeExpired || wait <= 0 {
			return waitClosed
		}
	}
	if cs.br != nil {
		if cs.br.Buffered() > 0 {
			return waitGot
		}
		hold := min(wait, bufferHold)
		if cs.p.openN.Load()-cs.p.parkedN.Load() > crowdedBusy {
			hold = min(hold, crowdedHold)
		}
		_ = c.SetReadDeadline(time.Now().Add(hold))
		_, err := cs.br.Peek(1)
		if err == nil {
			return waitGot
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || hold >= wait {
			return waitClosed
		}
		cs.putBuffers()
		wait -= hold
		if wait >= parkMin && cs.p.park(cs, wait) {
			return waitParked
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	n, _ := c.Read(cs.first[:])
	if n == 0 {
		return waitClosed // closed, reset, or no byte within the timeout
	}
	cs.dl.pending = cs.first[:n]
	cs.dl.n += uint64(n)
	cs.takeBuffers()
	return waitGot
}

func (p *Proxy) serveConn(fc *fconn, hl *handoffListener, cfg serveConfig) {
	c := fc.c
	cs := &connState{p: p, fc: fc, hl: hl, cfg: cfg, wire: fc.wire}
	if tc, ok := c.(*tls.Conn); ok && !cs.handshake(tc) {
		return
	}
	cs.dl.c = c
	cs.out.c = c
	cs.clientIP, _, _ = net.SplitHostPort(c.RemoteAddr().String())
	cs.run(true)
}

// handshake makes the TLS handshake of a new HTTPS connection (within the
// header timeout); it reports whether the fast path serves the
// connection. A failed handshake is logged as net/http logs it (the
// daemon's handshake metrics count these lines) and closes the
// connection; one that negotiated a protocol other than HTTP/1.1 (h2,
// acme-tls/1) is given to the fallback server as it is.
func (cs *connState) handshake(tc *tls.Conn) bool {
	_ = tc.SetDeadline(time.Now().Add(cs.cfg.headerTimeout))
	if err := tc.Handshake(); err != nil {
		reason := err.Error()
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			_ = re.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nhangar proxy: this port serves HTTPS, and the client sent plain HTTP; use https://, or the HTTP port for http://\n")
			reason = "client sent an HTTP request to an HTTPS server"
		}
		logf := log.Printf
		if l := cs.cfg.errorLog; l != nil {
			logf = l.Printf
		}
		logf("http: TLS handshake error from %s: %v", tc.RemoteAddr(), reason)
		cs.untrack()
		_ = tc.Close() // releases the limits (fconn.wire)
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	switch tc.ConnectionState().NegotiatedProtocol {
	case "", "http/1.1":
		return true
	}
	cs.untrack()
	if !cs.hl.give(tc) {
		_ = tc.Close()
	}
	return false
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE":
		return true
	}
	return false
}

// untrack removes the connection from the fast path's set (it is closed,
// or served by net/http from now on).
func (cs *connState) untrack() {
	cs.p.srvMu.Lock()
	delete(cs.p.conns, cs.fc)
	cs.p.srvMu.Unlock()
}

// finish ends a connection's service: counters, buffers, and (unless it
// was handed to net/http) the close and the limits.
func (cs *connState) finish(handedOff bool) {
	p, fc := cs.p, cs.fc
	if cs.counted {
		cs.countBytes(cs.app) // an error answer written after the last count
		if fc.wire == nil {   // else counted by the wire's close
			cs.app.stats.disconnects.Add(1)
		}
	}
	cs.putBuffers()
	switch {
	case handedOff:
	case cs.closeNow:
		_ = fc.c.Close() // an HTTPS connection's close_notify too
		p.connDone(fc)
	default:
		lingeringClose(fc.c)
		p.connDone(fc)
	}
	// Last: Shutdown returns when no connection is left in p.conns.
	cs.untrack()
}

// run serves the connection's requests until it is closed, handed to
// net/http or parked; fresh is set for a new connection.
func (cs *connState) run(fresh bool) {
	p, fc, cfg, hl := cs.p, cs.fc, cs.cfg, cs.hl
	handedOff, parked := false, false
	defer func() {
		if !parked {
			cs.finish(handedOff)
		}
	}()
	if cs.detached && !cs.reattach() {
		return
	}
	c := fc.c
	for ; ; fresh = false {
		fc.state.Store(connIdle)
		if p.down.Load() {
			cs.closeNow = true // idle at shutdown: closed at once
			return
		}
		switch cs.waitRequest(cfg, fresh) {
		case waitClosed:
			return
		case waitParked:
			parked = true
			return
		}
		fc.state.Store(connActive)
		if b, _ := cs.br.Peek(1); len(b) == 1 && b[0] == tlsHandshake && fc.wire == nil {
			// A TLS ClientHello on the plain HTTP port: say so at once
			// rather than wait for a head that never comes.
			cs.writeError("", http.StatusBadRequest, "hangar proxy: this port serves plain HTTP, and the client sent a TLS handshake; use http://, or the HTTPS port for https://", true)
			_ = cs.bw.Flush()
			return
		}
		// A head that arrived whole needs no header deadline; one arriving
		// in pieces must be complete within headerTimeout (slowloris).
		if !headBuffered(cs.br) {
			_ = c.SetReadDeadline(time.Now().Add(cfg.headerTimeout))
		}
		var err error
		cs.head, err = readRequestHead(cs.br, cs.head, cfg.maxHeader)
		if err != nil {
			var br *badRequest
			switch {
			case err == errHeadTooLarge:
				cs.writeError("", 431, "hangar proxy: request headers are over the limit of "+strconv.Itoa(cfg.maxHeader)+" bytes", true)
				_ = cs.bw.Flush()
			case errors.As(err, &br):
				cs.writeError("", br.Code, "hangar proxy: bad request: "+br.Msg, true)
				_ = cs.bw.Flush()
			}
			return
		}
		if err := parseRequestHead(cs.head, &cs.req); err != nil {
			code, msg := 400, err.Error()
			var br *badRequest
			if errors.As(err, &br) {
				code = br.Code
			}
			cs.writeError("", code, "hangar proxy: bad request: "+msg, true)
			_ = cs.bw.Flush()
			return
		}
		r := &cs.req
		if !r.fastPathOK() || p.handOffPath(r.target) || p.slowHost(r.host) {
			// Not for the fast path: give the connection, with what was
			// read of it, to net/http.
			handedOff = cs.handOff(hl)
			return
		}
		if r.hasBody() {
			// Body reads get a fresh idle deadline each (see dlReader).
			cs.dl.timeout = cfg.idleTimeout
		}
		keep := cs.serveRequest(cfg)
		cs.dl.timeout = 0
		if err := cs.bw.Flush(); err != nil {
			return
		}
		if cs.replayed {
			// The app answered fly-replay to a request without a body:
			// net/http serves it again, recording the body and
			// following the header (see forward).
			handedOff = cs.handOff(hl)
			return
		}
		if !keep {
			// A client that asked to close after a request without a
			// body, and sent nothing more, has nothing left unread for
			// the close to wait for (lingeringClose): it is closed at once.
			cs.closeNow = r.close && !r.hasBody() && cs.br.Buffered() == 0
			return
		}
	}
}

// tlsHandshake is the first byte of a TLS record carrying a handshake
// (a ClientHello); no HTTP request starts with it.
const tlsHandshake = 0x16

// handOff gives the connection, with the current request's head and what
// was read after it, to the fallback server; it reports whether that
// server took it.
func (cs *connState) handOff(hl *handoffListener) bool {
	p, c := cs.p, cs.fc.c
	pending := make([]byte, len(cs.head), len(cs.head)+cs.br.Buffered())
	copy(pending, cs.head)
	buffered, _ := cs.br.Peek(cs.br.Buffered())
	pending = append(pending, buffered...)
	_ = c.SetReadDeadline(time.Time{})
	cs.untrack()
	if cs.fc.wire != nil {
		// HTTPS: the wire under the TLS goes on counting the traffic and
		// releases the limits at its close; the fallback's handlers find
		// the TLS state through the connection's context (withTLSState).
		cs.counted = false
		return hl.give(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(pending), c)})
	}
	// The connection counts against the limits until net/http closes it,
	// and its traffic for its app (traffic.go) from here on.
	tc := &trafficConn{Conn: c, done: func() { p.connDone(cs.fc) }}
	if cs.counted {
		cs.countBytes(cs.app)
		tc.attach(cs.app.stats, false)
		cs.counted = false // its close is counted by tc
	} else {
		tc.pendIn, tc.pendOut = cs.dl.n-cs.inSeen, cs.out.n-cs.outSeen
	}
	return hl.give(&replayConn{Conn: tc, r: io.MultiReader(bytes.NewReader(pending), tc)})
}

// serveRequest proxies one parsed request; it reports whether the client
// connection may serve another.
func (cs *connState) serveRequest(cfg serveConfig) bool {
	p := cs.p
	r := &cs.req
	start := time.Now()
	keep := !r.close
	var name, rid string
	var rt routing
	if cs.cfg.hop {
		// Forwarded by another host's edge: its routing and request id.
		name, rt, rid = cs.hopRequest()
	} else {
		cs.newRequestID()
		rid = cs.rid
		name = cs.appFor(r.host)
	}
	if name == "" {
		cs.writeError(rid, http.StatusNotFound, fmt.Sprintf("hangar proxy: no app is served at host %q; apps are served at <app>.%s", r.host, p.domain), !keep || r.hasBody())
		return keep && !r.hasBody()
	}
	if !cs.cfg.hop {
		var err error
		if rt, err = parseRoutingHead(r.headers); err != nil {
			cs.writeError(rid, http.StatusBadRequest, "hangar proxy: "+err.Error(), true)
			p.record(name, http.StatusBadRequest, start)
			return false
		}
	}
	if p.MaxBodyBytes > 0 && r.contentLength > p.MaxBodyBytes {
		cs.writeError(rid, http.StatusRequestEntityTooLarge, fmt.Sprintf("hangar proxy: request body of %d bytes is over the limit of %d bytes", r.contentLength, p.MaxBodyBytes), true)
		p.record(name, http.StatusRequestEntityTooLarge, start)
		return false
	}
	var stopWatch func()
	var onWait func() context.Context
	if !r.hasBody() {
		// A request that must wait (hard_limit queue, wake) is dropped if
		// its client goes away meanwhile.
		onWait = func() context.Context {
			var ctx context.Context
			ctx, stopWatch = cs.watchClient()
			return ctx
		}
	}
	a, m, code, msg := p.acquireWatch(context.Background(), name, rt, onWait)
	if stopWatch != nil {
		stopWatch()
	}
	// A request another host's edge forwarded is counted there for its
	// app; here only for its machine (hop.go).
	appStats := !p.NoStats && !cs.cfg.hop
	if m == nil {
		if code == 0 {
			return false
		}
		cs.writeError(rid, code, msg, !keep || r.hasBody())
		if appStats {
			p.record(name, code, start)
		}
		return keep && !r.hasBody()
	}
	if appStats && !cs.counted {
		// The connection counts for the app of its first request.
		cs.counted, cs.app = true, a
		if w := cs.wire; w != nil {
			w.attach(a.stats, true) // counts from the wire from now on
		} else {
			a.stats.connects.Add(1)
		}
	}
	status, keep := cs.forward(a, m, rid, keep, rt)
	if !cs.replayed && !p.NoStats {
		d := time.Since(start)
		cs.served.stats.observe(status, d)
		if appStats {
			a.stats.observe(status, d)
			cs.countBytes(a)
		}
	}
	return keep
}

// appFor is Proxy.appFor, remembering the last <app>.<domain> host of the
// connection: a keep-alive client sends the same Host every time, and
// the name is then found without converting the host to a string.
// (Custom hostnames, which can be registered and removed at any time,
// are looked up each time.)
func (cs *connState) appFor(host []byte) string {
	if cs.lastApp != "" && string(host) == cs.lastHost {
		return cs.lastApp
	}
	h := string(host)
	if name := cs.p.AppForHost(h); name != "" {
		cs.lastHost, cs.lastApp = h, name
		return name
	}
	return cs.p.appFor(h)
}

func (r *reqHead) hasBody() bool { return r.chunked || r.contentLength > 0 }

// handOffPath reports whether a request target is always served by the
// fallback server's handler (FallbackPrefixes).
func (p *Proxy) handOffPath(target []byte) bool {
	for _, pre := range p.FallbackPrefixes {
		if len(target) >= len(pre) && string(target[:len(pre)]) == pre {
			return true
		}
	}
	return false
}

// fastPathOK reports whether the fast path serves the request; the rest
// (HTTP/1.0, protocol upgrades, Expect, CONNECT, targets that are not a
// path) go to net/http.
func (r *reqHead) fastPathOK() bool {
	return r.minor == 1 && !r.upgrade && !r.expect && len(r.target) > 0 && r.target[0] == '/' && !eqFold(r.method, "connect")
}

// forward sends the request to machine m (or, if its connection is refused,
// to another) and streams the answer back. It releases the machine.
func (cs *connState) forward(a *app, m *machine, rid string, keep bool, rt routing) (int, bool) {
	p := cs.p
	r := &cs.req
	rq := &request{app: a, m: m, prefs: rt}
	defer func() {
		cs.served = rq.m
		p.release(a, rq.m)
	}()
	var deadline time.Time
	backoff := time.Millisecond
	retriedReused := false
	for {
		bc, reused, err := p.getConn(rq.m)
		if err != nil {
			// Nothing was sent: try again, on another machine if there is one.
			if rq.m.remote != nil {
				p.hopFailed(rq, r.method, true, err) // the host is skipped; repicked below
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(retryWindow)
			}
			if time.Now().After(deadline) {
				return cs.badGateway(rid, rq.m, err, keep)
			}
			time.Sleep(backoff)
			backoff = nextBackoff(backoff, deadline)
			if p.repick(rq) == nil {
				return cs.badGateway(rid, rq.m, err, keep)
			}
			continue
		}
		cs.writeRequestHead(bc.bw, rid, rq)
		if err := cs.copyRequestBody(bc.bw); err != nil {
			_ = bc.c.Close()
			if errors.Is(err, errBodyTooLarge) {
				cs.writeError(rid, http.StatusRequestEntityTooLarge, fmt.Sprintf("hangar proxy: request body is over the limit of %d bytes", p.MaxBodyBytes), true)
				return http.StatusRequestEntityTooLarge, false
			}
			var br *badRequest
			if errors.As(err, &br) {
				cs.writeError(rid, br.Code, "hangar proxy: bad request: "+br.Msg, true)
				return br.Code, false
			}
			if isClientErr(err) {
				return 499, false
			}
			return cs.badGateway(rid, rq.m, err, false)
		}
		if err := bc.bw.Flush(); err != nil {
			_ = bc.c.Close()
			if reused && !r.hasBody() && !retriedReused {
				retriedReused = true
				continue // the app had closed the pooled connection
			}
			if rq.m.remote != nil && p.hopFailed(rq, r.method, r.hasBody(), err) {
				continue // once, to another machine
			}
			return cs.badGateway(rid, rq.m, err, false)
		}
		status, keepClient, keepBackend, err := cs.relayResponse(bc, rid, keep, rq.m)
		if err == errFlyReplay {
			// fly-replay needs the request again; the fast path has not
			// kept its body. From now on the app's requests take the
			// net/http path, which records bodies. This one is served
			// there again if it had no body.
			_ = bc.c.Close()
			p.markReplay(a.name)
			if !r.hasBody() {
				cs.replayed = true
				return 0, false
			}
			cs.writeError(rid, http.StatusServiceUnavailable, fmt.Sprintf("hangar proxy: machine %s answered fly-replay to a request whose body was already streamed to it; retry the request (the app's requests are now recorded for replays)", rq.m.b.MachineID), true)
			return http.StatusServiceUnavailable, false
		}
		if err != nil {
			_ = bc.c.Close()
			if status == 0 && reused && !r.hasBody() && !retriedReused {
				retriedReused = true
				continue
			}
			if status == 0 && rq.m.remote != nil && p.hopFailed(rq, r.method, r.hasBody(), err) {
				continue // once, to another machine
			}
			if status == 0 {
				return cs.badGateway(rid, rq.m, err, false)
			}
			return status, false
		}
		if keepBackend {
			p.putConn(rq.m, bc)
		} else {
			_ = bc.c.Close()
		}
		return status, keepClient
	}
}

var errFlyReplay = errors.New("the app answered with fly-replay")

// hasHeader reports whether a header (lower-case name) is present.
func hasHeader(hs []header, name string) bool {
	for _, h := range hs {
		if len(h.name) == len(name) && eqFold(h.name, name) {
			return true
		}
	}
	return false
}

func isClientErr(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

func (cs *connState) badGateway(rid string, m *machine, err error, keep bool) (int, bool) {
	cs.p.log.Warn("proxy error", "app", m.b.App, "machine", m.b.MachineID, "err", err)
	cs.writeError(rid, http.StatusBadGateway, fmt.Sprintf("hangar proxy: machine %s of app %s did not answer: %v", m.b.MachineID, m.b.App, err), !keep)
	return http.StatusBadGateway, keep && !cs.req.hasBody()
}

func eqFoldBytes(a, b []byte) bool {
	for i := range a {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func (cs *connState) writeRequestHead(w *bufio.Writer, rid string, rq *request) {
	p := cs.p
	r := &cs.req
	if cs.cfg.hop {
		cs.writeHopRequestHead(w)
		return
	}
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	w.WriteString(" HTTP/1.1\r\n")
	// The client's X-Forwarded-For and Via chains are gathered in the
	// connection's buffers (no allocation once they have grown).
	xff, via := cs.xff[:0], cs.via[:0]
	for _, h := range r.headers {
		if dropRequestHeader(h.name, r.connTokens) {
			switch {
			case eqFold(h.name, "x-forwarded-for"):
				xff = appendList(xff, h.value)
			case eqFold(h.name, "via"):
				via = appendList(via, h.value)
			}
			continue
		}
		w.Write(h.name)
		w.WriteString(": ")
		w.Write(h.value)
		w.WriteString("\r\n")
	}
	cs.xff, cs.via = xff, via
	if r.chunked {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	port, https := p.Port, cs.wire != nil
	switch {
	case https:
		port = p.HTTPSPort
		if port == "" {
			port = "443"
		}
	case port == "":
		port = "80"
	}
	f := forwarded{clientIP: cs.clientIP, tls: https, port: port, region: p.region, requestID: rid, via: "1.1 hangar", priorXFF: xff, priorVia: via}
	f.eachPart(func(name string, prior []byte, value string) {
		w.WriteString(name)
		w.WriteString(": ")
		if len(prior) > 0 {
			w.Write(prior)
			w.WriteString(", ")
		}
		w.WriteString(value)
		w.WriteString("\r\n")
	})
	if rq.m.remote != nil {
		writeEdgeHeaders(w, rq.m, rq.prefs)
	}
	w.WriteString("\r\n")
}

func appendList(dst, v []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, ", "...)
	}
	return append(dst, v...)
}

func (cs *connState) copyRequestBody(w *bufio.Writer) error {
	r := &cs.req
	switch {
	case r.chunked:
		_, err := copyChunked(w, cs.br, cs.p.MaxBodyBytes, true, cs.copyBuf())
		return err
	case r.contentLength > 0:
		var buf []byte
		if r.contentLength > int64(cs.br.Buffered()) {
			buf = cs.copyBuf()
		}
		return copyN(w, cs.br, r.contentLength, true, buf)
	}
	return nil
}

// relayResponse reads the app's answer and writes it to the client. status
// 0 with an error means nothing was written to the client.
func (cs *connState) relayResponse(bc *bconn, rid string, keep bool, m *machine) (status int, keepClient, keepBackend bool, err error) {
	r := &cs.req
	for {
		cs.rhead, err = readHead(bc.br, cs.rhead, 64<<10)
		if err != nil {
			return 0, false, false, fmt.Errorf("read response head: %w", err)
		}
		if err := parseResponseHead(cs.rhead, &cs.resp); err != nil {
			return 0, false, false, err
		}
		if cs.resp.status >= 100 && cs.resp.status < 200 && cs.resp.status != 101 {
			// An interim response (103 Early Hints): pass it on and read on.
			cs.writeResponseHead(rid, m, true, false)
			continue
		}
		break
	}
	resp := &cs.resp
	if !cs.cfg.hop && hasHeader(resp.headers, "fly-replay") {
		// (On a hop connection the answer goes back to the edge, which
		// follows it.)
		return 0, false, false, errFlyReplay
	}
	if resp.status == 101 {
		return 0, false, false, errors.New("the app switched protocols without being asked")
	}
	noBody := eqFold(r.method, "head") || resp.status == 204 || resp.status == 304
	closeDelimited := !noBody && !resp.chunked && resp.contentLength < 0
	keepBackend = !resp.close && !closeDelimited
	keepClient = keep && !closeDelimited
	cs.writeResponseHead(rid, m, false, !keepClient)
	switch {
	case noBody:
	case resp.chunked:
		_, err = copyChunked(cs.bw, bc.br, 0, true, cs.copyBuf())
	default:
		var buf []byte
		if resp.contentLength < 0 || resp.contentLength > int64(bc.br.Buffered()) {
			buf = cs.copyBuf()
		}
		err = copyN(cs.bw, bc.br, resp.contentLength, true, buf)
	}
	if err != nil {
		return resp.status, false, false, err
	}
	return resp.status, keepClient, keepBackend, nil
}

func (cs *connState) writeResponseHead(rid string, m *machine, interim, closeConn bool) {
	w := cs.bw
	resp := &cs.resp
	w.WriteString("HTTP/1.1 ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(resp.status), 10))
	w.WriteByte(' ')
	if len(resp.reason) > 0 {
		w.Write(resp.reason)
	} else {
		w.WriteString(http.StatusText(resp.status))
	}
	w.WriteString("\r\n")
	pristine := m.pristine
	via := cs.rvia[:0]
	for _, h := range resp.headers {
		if dropResponseHeader(h.name, resp.connTokens) || (resp.chunked && eqFold(h.name, "content-length")) {
			continue // with both, chunked framing wins and the length goes
		}
		if !pristine {
			if eqFold(h.name, "server") || eqFold(h.name, "fly-request-id") {
				continue
			}
			if eqFold(h.name, "via") {
				via = appendList(via, h.value)
				continue
			}
			if overridden(m, h.name) {
				continue
			}
		}
		w.Write(h.name)
		w.WriteString(": ")
		w.Write(h.value)
		w.WriteString("\r\n")
	}
	cs.rvia = via
	if !interim {
		if resp.chunked && !(eqFold(cs.req.method, "head") || resp.status == 204 || resp.status == 304) {
			w.WriteString("Transfer-Encoding: chunked\r\n")
		}
		if closeConn {
			w.WriteString("Connection: close\r\n")
		}
	}
	if !pristine {
		w.WriteString("Fly-Request-Id: ")
		w.WriteString(rid)
		w.WriteString("\r\nServer: " + serverName + "\r\nVia: ")
		if len(via) > 0 {
			w.Write(via)
			w.WriteString(", ")
		}
		w.WriteString("1.1 hangar\r\n")
		for _, rh := range m.respHdrs {
			if rh.remove {
				continue
			}
			for _, v := range rh.values {
				w.WriteString(rh.name)
				w.WriteString(": ")
				w.WriteString(v)
				w.WriteString("\r\n")
			}
		}
	}
	w.WriteString("\r\n")
}

// overridden reports whether a response header is replaced or removed by
// the service's http_options.response.headers.
func overridden(m *machine, name []byte) bool {
	for _, rh := range m.respHdrs {
		if len(rh.name) == len(name) && eqFoldBytes([]byte(rh.name), name) {
			return true
		}
	}
	return false
}

// writeError answers with an error of the proxy itself.
func (cs *connState) writeError(rid string, code int, msg string, closeConn bool) {
	if rid == "" {
		rid = requestID(cs.p.region)
	}
	w := cs.bw
	body := msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nFly-Request-Id: %s\r\nServer: %s\r\n", code, http.StatusText(code), len(body), rid, serverName)
	if closeConn {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	if !eqFold(cs.req.method, "head") {
		w.WriteString(body)
	}
}

// parseRoutingHead is parseRouting for the fast path's headers.
func parseRoutingHead(hs []header) (routing, error) {
	var h http.Header
	for _, x := range hs {
		if len(x.name) >= 16 && len(x.name) <= 22 && eqFold(x.name[:4], "fly-") {
			for _, k := range routingHeaders {
				if len(k) == len(x.name) && eqFoldBytes([]byte(k), x.name) {
					if h == nil {
						h = http.Header{}
					}
					h[k] = append(h[k], string(x.value))
				}
			}
		}
	}
	return parseRouting(h)
}

// dlReader reads from a client connection; while timeout is set (a request
// body is being read) each read gets a fresh deadline, so a body that
// stalls is cut off while a slow but moving upload is not.
type dlReader struct {
	c       net.Conn
	timeout time.Duration
	pending []byte // read before the buffers were taken (waitRequest)
	n       uint64 // bytes read from the client, for the counters
}

func (d *dlReader) Read(b []byte) (int, error) {
	if len(d.pending) > 0 {
		n := copy(b, d.pending)
		d.pending = d.pending[n:]
		return n, nil
	}
	if d.timeout > 0 {
		_ = d.c.SetReadDeadline(time.Now().Add(d.timeout))
	}
	n, err := d.c.Read(b)
	d.n += uint64(n)
	return n, err
}

// headBuffered reports whether a whole request head is already buffered.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// watchClient returns a context cancelled when the client closes its
// connection, and a function that stops watching. Only for requests
// without a body: the watcher peeks at the connection, and a body's bytes
// would end the watch.
func (cs *connState) watchClient() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// No deadline while watching (one left from waiting for the request
	// would end the watch early); the returned func ends it.
	_ = cs.fc.c.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		if _, err := cs.br.Peek(1); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				cancel() // closed or reset by the client
			}
		}
	}()
	return ctx, func() {
		_ = cs.fc.c.SetReadDeadline(time.Unix(1, 0))
		<-done
		_ = cs.fc.c.SetReadDeadline(time.Time{})
		cancel()
	}
}

// lingeringClose half-closes the client connection and discards what the
// client is still sending (bounded in bytes and time) before closing it, so
// that an answer sent before the whole request was read (413, 400) is not
// destroyed by a TCP reset from unread data.
func lingeringClose(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		// HTTPS: close_notify, then the same.
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, tc, 256<<10)
		_ = tc.Close()
		return
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return
	}
	_ = tc.CloseWrite()
	_ = tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, tc, 256<<10)
	_ = tc.Close()
}

// tlsStateKey is the context key of the TLS state of an HTTPS connection
// the fast path handed to net/http.
type tlsStateKey struct{}

// withTLSState makes an HTTPS fallback server's handler see r.TLS for the
// connections the fast path hands over: net/http sets it only for a
// *tls.Conn, and those come wrapped (replayConn, with the bytes the fast
// path read).
func withTLSState(fallback *http.Server) {
	inner, h := fallback.ConnContext, fallback.Handler
	fallback.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if inner != nil {
			ctx = inner(ctx, c)
		}
		if rc, ok := c.(*replayConn); ok {
			if tc, ok := rc.Conn.(*tls.Conn); ok {
				st := tc.ConnectionState()
				ctx = context.WithValue(ctx, tlsStateKey{}, &st)
			}
		}
		return ctx
	}
	fallback.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			r.TLS, _ = r.Context().Value(tlsStateKey{}).(*tls.ConnectionState)
		}
		h.ServeHTTP(w, r)
	})
}
