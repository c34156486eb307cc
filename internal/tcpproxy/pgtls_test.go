package tcpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hangar-dev/hangar/internal/pgtest"
)

// pgProxy starts a real Postgres and a pg_tls port in front of it, and
// returns the port and the CA file a client verifies the proxy with.
func pgProxy(t *testing.T) (pg *pgtest.Server, port int, caFile string) {
	t.Helper()
	pg = pgtest.Start(t, pgtest.Options{})
	m := newManager(t, &rrPicker{addrs: []string{pg.Addr()}})
	cfg, _ := selfSigned(t, "localhost")
	m.TLSConfig = func(string) *tls.Config { return cfg }
	port = freeRange(t, 1)
	if err := m.Set("db", []Service{{InternalPort: 5432, Ports: []Port{{Port: port, Handlers: []string{HandlerPGTLS}}}}}); err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cfg.Certificates[0].Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	return pg, port, caFile
}

func pgURL(port int, query string) string {
	return "postgres://postgres:" + pgtest.Password + "@localhost:" + strconv.Itoa(port) + "/postgres?" + query
}

// TestPGTLSWithRealClients: psql and pgx with sslmode=verify-full reach a
// real Postgres through a pg_tls port; the server sees the session in
// clear (the proxy terminated TLS); a client without TLS is refused with
// a Postgres error naming sslmode; a cancel request (sent in clear by
// libpq and pgx) still cancels the query it names.
func TestPGTLSWithRealClients(t *testing.T) {
	pg, port, caFile := pgProxy(t)
	tlsQuery := "sslmode=verify-full&sslrootcert=" + caFile

	psql := filepath.Join(pg.Bin, "psql")
	if _, err := os.Stat(psql); err != nil {
		t.Fatalf("psql not beside the server binaries: %v", err)
	}
	cmd := exec.Command(psql, "-X", "-A", "-t", "-c", "select 'through pg_tls ' || 6*7", pgURL(port, tlsQuery))
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "through pg_tls 42" {
		t.Fatalf("psql with sslmode=verify-full: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL(port, tlsQuery))
	if err != nil {
		t.Fatalf("pgx with sslmode=verify-full: %v", err)
	}
	defer conn.Close(context.Background())
	if conn.PgConn().Conn() == nil {
		t.Fatal("no connection")
	}
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("pgx's connection is %T, want TLS", conn.PgConn().Conn())
	}
	var serverSSL bool
	if err := conn.QueryRow(ctx, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").Scan(&serverSSL); err != nil {
		t.Fatal(err)
	}
	if serverSSL {
		t.Fatal("the server sees TLS: the proxy must terminate it and forward in clear")
	}

	// Cancel a long query: the cancel request goes over a new, plain
	// connection and must reach the server.
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(20)")
		errc <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for pg.QueryInt(t, "postgres", "select count(*) from pg_stat_activity where query = 'select pg_sleep(20)' and state = 'active'") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the sleep never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	select {
	case err := <-errc:
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("cancelled query ended with %v, want SQLSTATE 57014 (query_canceled)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the cancel request did not reach the server")
	}

	// Without TLS: refused, with the reason.
	_, err = pgx.Connect(ctx, pgURL(port, "sslmode=disable"))
	if err == nil || !strings.Contains(err.Error(), "accepts only TLS") || !strings.Contains(err.Error(), "sslmode") {
		t.Fatalf("sslmode=disable: %v, want a refusal naming sslmode", err)
	}
	out, err = exec.Command(psql, "-X", "-c", "select 1", pgURL(port, "sslmode=disable")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "accepts only TLS") {
		t.Fatalf("psql sslmode=disable: %v\n%s", err, out)
	}
	// A client that does not trust the certificate fails verify-full.
	_, err = pgx.Connect(ctx, pgURL(port, "sslmode=verify-full"))
	if err == nil {
		t.Fatal("verify-full without the CA connected")
	}
}

// TestPGTLSDirectNegotiation: a PostgreSQL 17 client may start TLS right
// away (sslnegotiation=direct) with ALPN "postgresql".
func TestPGTLSDirectNegotiation(t *testing.T) {
	_, port, _ := pgProxy(t)
	_, pool := selfSignedPool(t, port)
	c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"postgresql"}})
	if err != nil {
		t.Fatalf("direct TLS: %v", err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "postgresql" {
		t.Fatalf("ALPN %q, want postgresql", p)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// A startup message for user postgres: the server asks for a password
	// (SCRAM), which proves the bytes reached Postgres in clear.
	params := []byte("user\x00postgres\x00database\x00postgres\x00\x00")
	msg := make([]byte, 8, 8+len(params))
	binary.BigEndian.PutUint32(msg, uint32(8+len(params)))
	binary.BigEndian.PutUint32(msg[4:], pgProtocol3)
	if _, err := c.Write(append(msg, params...)); err != nil {
		t.Fatal(err)
	}
	var hdr [9]byte
	if _, err := c.Read(hdr[:]); err != nil {
		t.Fatalf("read the server's answer: %v", err)
	}
	if hdr[0] != 'R' || binary.BigEndian.Uint32(hdr[5:9]) != 10 { // AuthenticationSASL
		t.Fatalf("answer %q, want an AuthenticationSASL request from Postgres", hdr)
	}
}

// selfSignedPool dials the pg_tls port's certificate once to trust it
// (the test's certificate is made inside pgProxy).
func selfSignedPool(t *testing.T, port int) (*tls.Config, *x509.CertPool) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"postgresql"}})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(tc.ConnectionState().PeerCertificates[0])
	return nil, pool
}

// TestPGTLSRefusesInjectedBytes: bytes sent after an SSLRequest before
// the proxy's answer would be read as plaintext inside the session
// (CVE-2021-23214's class): the proxy closes instead of answering 'S'.
func TestPGTLSRefusesInjectedBytes(t *testing.T) {
	_, port, _ := pgProxy(t)
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req, 8)
	binary.BigEndian.PutUint32(req[4:], pgSSLRequest)
	if _, err := c.Write(append(req, []byte("Q\x00\x00\x00\x0dselect 1\x00")...)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	n, err := c.Read(b)
	if n != 0 || err == nil {
		t.Fatalf("proxy answered %q after injected bytes; want the connection closed", b[:n])
	}
}

// FuzzPGTLSStart feeds the first-packet reader arbitrary bytes: it must
// end with a TLS connection, a cancel request or an error, never panic or
// hang.
func FuzzPGTLSStart(f *testing.F) {
	ssl := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), pgSSLRequest)
	gss := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), pgGSSENCRequest)
	cancel := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 16), pgCancelRequest)
	f.Add(ssl)
	f.Add(append(gss, ssl...))
	f.Add(append(gss, gss...))
	f.Add(append(cancel, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add([]byte{0x16, 3, 1, 0, 5, 1, 2})
	f.Add(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 20), pgProtocol3))
	f.Add([]byte{})
	cfg, _ := selfSigned(f, "localhost")
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			_, _ = b.Write(in)
			_ = b.Close()
		}()
		go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(b) }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		tc, cr, err := pgTLSConn(ctx, a, cfg)
		if err == nil && tc == nil && cr == nil {
			t.Fatal("no connection, no cancel request and no error")
		}
		if cr != nil && len(cr) != 16 {
			t.Fatalf("cancel request of %d bytes", len(cr))
		}
	})
}
