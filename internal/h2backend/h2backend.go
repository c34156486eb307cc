// Package h2backend builds what the edge proxy uses to talk to machines
// beyond plain HTTP/1.1: an HTTP/2 cleartext (h2c, prior knowledge)
// RoundTripper for services with `http_options.h2_backend = true`, so gRPC
// works end to end; a dialer whose connections close after
// `http_options.idle_timeout` without traffic either way (WebSockets and
// other upgraded connections); and the httputil.ReverseProxy settings that
// pass streaming responses (SSE, chunked, gRPC) through without buffering.
package h2backend

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Options tune the transports.
type Options struct {
	DialTimeout time.Duration // default 5 s
	// IdleTimeout closes a connection with no bytes either way for this
	// long (http_options.idle_timeout; 0 = no limit).
	IdleTimeout time.Duration
	// PingTimeout: an h2c connection that has read nothing for this long
	// is health-checked with a PING (default 15 s).
	PingTimeout time.Duration
}

// NewH2CTransport returns a RoundTripper that speaks HTTP/2 without TLS to
// http:// URLs, as a gRPC server or an h2c handler expects. Connections are
// shared by concurrent requests (HTTP/2 streams), trailers are passed
// through, and request and response bodies stream both ways at once.
func NewH2CTransport(o Options) http.RoundTripper {
	dial := Dialer(o)
	ping := o.PingTimeout
	if ping <= 0 {
		ping = 15 * time.Second
	}
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx, network, addr)
		},
		ReadIdleTimeout: ping,
		PingTimeout:     5 * time.Second,
		IdleConnTimeout: 90 * time.Second,
	}
}

// NewHTTP1Transport returns the HTTP/1.1 transport for machines, with the
// idle-timeout dialer, so upgraded connections (WebSockets) close after
// IdleTimeout without traffic.
func NewHTTP1Transport(o Options) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         Dialer(o),
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     60 * time.Second,
	}
}

// ReverseProxy returns a reverse proxy configured as the edge proxy must
// be for streaming: every write is flushed at once (SSE events, chunked
// responses, gRPC messages are not held back), trailers pass through, and
// Upgrade requests (WebSockets) are switched to a raw bidirectional copy
// by httputil.ReverseProxy itself. rewrite sets the target.
func ReverseProxy(rewrite func(*httputil.ProxyRequest), tr http.RoundTripper) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     tr,
		FlushInterval: -1,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.ServeHTTP(TrailersOnlySafe(w), r)
	})
}

// TrailersOnlySafe wraps the ResponseWriter a ReverseProxy with
// FlushInterval -1 writes to. Such a proxy flushes the response header on
// a timer that fires at once, racing the end of the response; a gRPC
// error is a "trailers-only" response (Grpc-Status in a header that ends
// the stream, no body), and a header flushed before the end reaches the
// client as a header and an empty end of stream: "server closed the stream
// without sending trailers". The wrapper holds back the flush of such a
// response's header until it has a body, which it never has.
func TrailersOnlySafe(w http.ResponseWriter) http.ResponseWriter {
	return &flushGuard{ResponseWriter: w}
}

type flushGuard struct {
	http.ResponseWriter
	wrote bool
}

func (f *flushGuard) Write(b []byte) (int, error) {
	f.wrote = true
	return f.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController calls.
func (f *flushGuard) FlushError() error {
	if !f.wrote && f.Header().Get("Grpc-Status") != "" {
		return nil
	}
	return http.NewResponseController(f.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (f *flushGuard) Flush() { _ = f.FlushError() }

// Unwrap lets http.ResponseController reach the writer's other features
// (Hijack for upgrades, deadlines).
func (f *flushGuard) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// Dialer returns a DialContext whose connections close when nothing was
// read or written for o.IdleTimeout (if set).
func Dialer(o Options) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	if d.Timeout <= 0 {
		d.Timeout = 5 * time.Second
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil || o.IdleTimeout <= 0 {
			return c, err
		}
		return NewIdleConn(c, o.IdleTimeout), nil
	}
}

// IdleConn closes itself after idle without a byte read or written. Reads
// wait at most idle past the last activity in either direction, so a
// connection busy one way is never cut for being quiet the other way.
type IdleConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanos of the last read or write
}

// NewIdleConn wraps c.
func NewIdleConn(c net.Conn, idle time.Duration) *IdleConn {
	ic := &IdleConn{Conn: c, idle: idle}
	ic.touch()
	return ic
}

func (c *IdleConn) touch() { c.last.Store(time.Now().UnixNano()) }

// ErrIdle is returned by a read that ended the connection for idleness.
var ErrIdle = errors.New("connection idle timeout")

func (c *IdleConn) Read(p []byte) (int, error) {
	for {
		deadline := time.Unix(0, c.last.Load()).Add(c.idle)
		if !time.Now().Before(deadline) {
			c.Conn.Close()
			return 0, ErrIdle
		}
		_ = c.Conn.SetReadDeadline(deadline)
		n, err := c.Conn.Read(p)
		if n > 0 {
			c.touch()
		}
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && n == 0 {
			continue // re-check: a write may have moved the deadline
		}
		return n, err
	}
}

func (c *IdleConn) Write(p []byte) (int, error) {
	c.touch()
	n, err := c.Conn.Write(p)
	c.touch()
	return n, err
}

// CloseWrite half-closes when the connection supports it.
func (c *IdleConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
