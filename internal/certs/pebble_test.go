package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/hangar-dev/hangar/internal/types"
)

// acmeEnv is a real ACME server (pebble, in process) whose validation
// authority resolves every name to 127.0.0.1 and connects to this test's
// HTTP and HTTPS listeners, where the Manager answers the challenges.
type acmeEnv struct {
	m         *Manager
	root      *x509.CertPool
	httpsAddr string
	dirURL    string
	client    *http.Client
	now       time.Time
}

// loopbackDNS answers A 127.0.0.1 for every name, over TCP as pebble asks.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		for _, qu := range q.Question {
			if qu.Qtype == dns.TypeA {
				r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: qu.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(r)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func startACME(t *testing.T, challenges []string) *acmeEnv {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	// The proxy's listeners: plain HTTP (HTTP-01) and HTTPS (TLS-ALPN-01
	// and the test request).
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
	}
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	httpPort, tlsPort := httpLn.Addr().(*net.TCPAddr).Port, tlsLn.Addr().(*net.TCPAddr).Port
	validator := va.New(logger, httpPort, tlsPort, false, loopbackDNS(t), store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 0, 0)
	acmeSrv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(acmeSrv.Close)

	env := &acmeEnv{now: time.Now(), dirURL: acmeSrv.URL + wfe.DirectoryPath, client: acmeSrv.Client()}
	m, err := New(Options{
		Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test",
		ACMEDirectory: acmeSrv.URL + wfe.DirectoryPath, HTTPClient: acmeSrv.Client(),
		Challenges: challenges, Now: func() time.Time { return env.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	env.m = m
	httpSrv := &http.Server{Handler: m.HTTPHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "proxy")
	}))}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	httpsSrv := &http.Server{TLSConfig: m.TLSConfig(nil), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over "+r.Proto+" for "+r.Host)
	})}
	go httpsSrv.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() { httpsSrv.Close() })
	env.httpsAddr = tlsLn.Addr().String()
	env.root = x509.NewCertPool()
	env.root.AddCert(authority.GetRootCert(0).Cert)
	return env
}

// get makes an HTTPS request for host to the test listener, verifying the
// server's certificate against pebble's root only.
func (e *acmeEnv) get(t *testing.T, host string) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: e.root},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, e.httpsAddr)
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET https://%s/: %v", host, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func waitReady(t *testing.T, m *Manager, host string) types.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in, err := m.Wait(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if in.ClientStatus != types.CertReady {
		t.Fatalf("%s: status %q, error %q", host, in.ClientStatus, in.Error)
	}
	return in
}

func TestACMEIssueAndRenewHTTP01(t *testing.T) {
	env := startACME(t, []string{"http-01"})
	const host = "www.example.test"
	in, err := env.m.Add("web", host)
	if err != nil {
		t.Fatal(err)
	}
	if in.ClientStatus != types.CertAwaiting || in.Source != SourceACME {
		t.Fatalf("after Add: %+v", in)
	}
	in = waitReady(t, env.m, host)
	resp, body := env.get(t, host)
	if body != "hello over HTTP/2.0 for "+host {
		t.Fatalf("HTTPS body %q", body)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Text(16); got != in.Serial {
		t.Fatalf("served serial %s, issued %s", got, in.Serial)
	}
	if env.m.AppForHost(host+":443") != "web" {
		t.Fatal("AppForHost does not know the custom hostname")
	}

	// Files: key 0600, everything reloadable by a new Manager.
	dir := env.m.hostDir(host)
	for f, mode := range map[string]os.FileMode{keyFile: 0o600, filepath.Join("..", "..", accountKeyFile): 0o600} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v err %v, want %v", f, fi.Mode().Perm(), err, mode)
		}
	}
	m2, err := New(env.m.o)
	if err != nil {
		t.Fatal(err)
	}
	if in2, err := m2.Get("web", host); err != nil || in2.Serial != in.Serial || in2.ClientStatus != types.CertReady {
		t.Fatalf("reloaded: %+v %v", in2, err)
	}

	// Nothing is due yet: RenewDue renews nothing.
	if renewed, err := env.m.RenewDue(context.Background()); err != nil || len(renewed) != 0 {
		t.Fatalf("RenewDue now = %v, %v; want nothing", renewed, err)
	}
	// A week before expiry it is due, and a new certificate is served.
	env.now = in.NotAfter.Add(-7 * 24 * time.Hour)
	renewed, err := env.m.RenewDue(context.Background())
	if err != nil || len(renewed) != 1 || renewed[0] != host {
		t.Fatalf("RenewDue = %v, %v; want [%s]", renewed, err, host)
	}
	after, _ := env.m.Get("web", host)
	if after.Serial == in.Serial {
		t.Fatal("renewal kept the old certificate")
	}
	env.now = time.Now()
	resp, _ = env.get(t, host)
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Text(16); got != after.Serial {
		t.Fatalf("after renewal served serial %s, want %s", got, after.Serial)
	}
}

func TestACMEIssueTLSALPN01(t *testing.T) {
	env := startACME(t, []string{"tls-alpn-01"})
	const host = "api.example.test"
	if _, err := env.m.Add("api", host); err != nil {
		t.Fatal(err)
	}
	waitReady(t, env.m, host)
	if _, body := env.get(t, host); body != "hello over HTTP/2.0 for "+host {
		t.Fatalf("HTTPS body %q", body)
	}
}

func TestACMEFailureIsReported(t *testing.T) {
	// A second manager whose HTTP-01 tokens nobody serves: the listener
	// pebble validates against belongs to the first manager, which passes
	// unknown tokens to the proxy. Validation fails; the status says so.
	env := startACME(t, []string{"http-01"})
	other, err := New(Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test",
		ACMEDirectory: env.dirURL, HTTPClient: env.client, Challenges: []string{"http-01"}})
	if err != nil {
		t.Fatal(err)
	}
	const host = "nope.example.test"
	if _, err := other.Add("web", host); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in, err := other.Wait(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if in.ClientStatus != types.CertFailed || in.Configured || !strings.Contains(in.Error, "http-01") {
		t.Fatalf("failed issuance: %+v", in)
	}
	// The default certificate is still served for it (not trusted).
	c, err := other.GetCertificate(&tls.ClientHelloInfo{ServerName: host})
	if err != nil || c.Leaf.DNSNames[0] != "*.apps.test" {
		t.Fatalf("default for failed host: %v %v", c, err)
	}
}
