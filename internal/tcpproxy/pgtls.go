package tcpproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// HandlerPGTLS terminates TLS for PostgreSQL clients (Fly's `pg_tls`):
// Postgres does not start TLS with a ClientHello but with an SSLRequest
// packet in its own protocol, which the plain `tls` handler cannot read.
// The proxy answers it, does the handshake with the app's certificate and
// forwards the session in clear on the private network, so a database
// exposed through Hangar is always encrypted on the public side. A client
// that does not ask for TLS is refused with a Postgres error it can show.
const HandlerPGTLS = "pg_tls"

// PostgreSQL's pre-startup request codes (the protocol's "special"
// version numbers) and the startup protocol 3.0.
const (
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgCancelRequest = 80877102
	pgProtocol3     = 196608
)

// pgALPN is the ALPN name PostgreSQL 17 clients send (and require with
// sslnegotiation=direct).
const pgALPN = "postgresql"

// errPGCleartext is returned for a client that started without TLS.
var errPGCleartext = errors.New("client did not ask for TLS")

// pgTLSConn does the Postgres side of a pg_tls port: it reads the
// client's first packets until TLS starts (an SSLRequest, answered 'S', or
// a ClientHello straight away, PostgreSQL 17's direct negotiation),
// declines GSS encryption, and hands back the TLS connection. A cancel
// request is passed on as it came (it carries no secret but its key, and
// libpq before 17 sends it in clear): cancel holds its bytes. A startup
// message without TLS gets an ErrorResponse naming sslmode and
// errPGCleartext.
func pgTLSConn(ctx context.Context, c net.Conn, cfg *tls.Config) (tc *tls.Conn, cancel []byte, err error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetReadDeadline(dl)
		defer c.SetReadDeadline(time.Time{})
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{pgALPN}
	br := bufio.NewReaderSize(c, 512)
	for range 2 { // at most a GSSENCRequest, then an SSLRequest
		first, err := br.Peek(1)
		if err != nil {
			return nil, nil, fmt.Errorf("read the client's first packet: %w", err)
		}
		if first[0] == 0x16 { // a TLS handshake record: direct negotiation
			tc := tls.Server(&prefixConn{Conn: c, r: br}, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, nil, fmt.Errorf("tls handshake: %w", err)
			}
			return tc, nil, nil
		}
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, nil, fmt.Errorf("read the client's first packet: %w", err)
		}
		length := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		switch {
		case length == 8 && code == pgSSLRequest:
			if br.Buffered() > 0 {
				// Bytes after the SSLRequest, before our answer, would be
				// read as part of the TLS handshake: a client doing that
				// is trying to inject plaintext (CVE-2021-23214's class).
				return nil, nil, errors.New("client sent data after its SSLRequest before the answer")
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return nil, nil, fmt.Errorf("answer SSLRequest: %w", err)
			}
			tc := tls.Server(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, nil, fmt.Errorf("tls handshake: %w", err)
			}
			return tc, nil, nil
		case length == 8 && code == pgGSSENCRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return nil, nil, fmt.Errorf("answer GSSENCRequest: %w", err)
			}
		case length == 16 && code == pgCancelRequest:
			body := make([]byte, 8)
			if _, err := io.ReadFull(br, body); err != nil {
				return nil, nil, fmt.Errorf("read cancel request: %w", err)
			}
			return nil, append(hdr[:], body...), nil
		case code == pgProtocol3 || code>>16 == 3:
			_, _ = c.Write(pgError("28000", "this port accepts only TLS connections: connect with sslmode=require or stronger (verify-full with the app's certificate)"))
			return nil, nil, errPGCleartext
		default:
			_, _ = c.Write(pgError("08P01", "expected a PostgreSQL SSLRequest or startup message: is this a Postgres client?"))
			return nil, nil, fmt.Errorf("unexpected first packet (length %d, code %d)", length, code)
		}
	}
	return nil, nil, errors.New("client asked for encryption twice without an SSLRequest")
}

// pgError builds a FATAL ErrorResponse message with an SQLSTATE code.
func pgError(code, msg string) []byte {
	var body []byte
	for _, f := range []struct {
		t byte
		v string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', msg}} {
		body = append(body, f.t)
		body = append(body, f.v...)
		body = append(body, 0)
	}
	body = append(body, 0)
	out := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)+4))
	return append(out, body...)
}

// prefixConn reads first what a bufio.Reader already took from Conn.
type prefixConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }
