package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

func newOffline(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test", ACMEDirectory: "off"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serveTLS runs an HTTPS server with the manager's config on a real port.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: cfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	})}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestDefaultCertificateServesAppHostsOverH2(t *testing.T) {
	t.Parallel()
	m := newOffline(t)
	addr := serveTLS(t, m.TLSConfig(nil))
	def, _ := m.GetCertificate(&tls.ClientHelloInfo{})
	pool := x509.NewCertPool()
	pool.AddCert(def.Leaf)
	for _, sni := range []string{"web.apps.test", "apps.test"} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: sni}, ForceAttemptHTTP2: true}
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", sni, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/2.0" || resp.TLS.NegotiatedProtocol != "h2" {
			t.Fatalf("%s: proto %q alpn %q, want HTTP/2 via ALPN", sni, b, resp.TLS.NegotiatedProtocol)
		}
		tr.CloseIdleConnections()
	}
	// Reloading keeps the same default certificate.
	m2, err := New(m.o)
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.apps.test"})
	if d2.Leaf.SerialNumber.Cmp(def.Leaf.SerialNumber) != 0 {
		t.Fatal("default certificate was recreated on restart")
	}
	if fi, err := os.Stat(filepath.Join(m.o.Dir, defaultDir, keyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("default key mode %v %v", fi.Mode(), err)
	}
}

func TestTLSOptionsHonoured(t *testing.T) {
	t.Parallel()
	m := newOffline(t)
	opts := map[string]*TLSOptions{
		"old.apps.test":  {Versions: []string{"TLSv1.2"}, ALPN: []string{"http/1.1"}},
		"new.apps.test":  {Versions: []string{"TLSv1.3"}},
		"grpc.apps.test": {ALPN: []string{"h2"}},
	}
	addr := serveTLS(t, m.TLSConfig(func(sni string) *TLSOptions { return opts[sni] }))
	dial := func(sni string, cfg *tls.Config) (*tls.ConnectionState, error) {
		cfg.ServerName, cfg.InsecureSkipVerify = sni, true
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	st, err := dial("old.apps.test", &tls.Config{NextProtos: []string{"h2", "http/1.1"}})
	if err != nil || st.Version != tls.VersionTLS12 || st.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("old: %+v %v", st, err)
	}
	if _, err := dial("new.apps.test", &tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("TLS 1.2 client accepted by a TLSv1.3-only app")
	}
	if st, err := dial("grpc.apps.test", &tls.Config{NextProtos: []string{"h2", "http/1.1"}}); err != nil || st.NegotiatedProtocol != "h2" {
		t.Fatalf("grpc: %+v %v", st, err)
	}
	if st, err := dial("other.apps.test", &tls.Config{}); err != nil || st.Version != tls.VersionTLS13 {
		t.Fatalf("default: %+v %v", st, err)
	}
	if err := (TLSOptions{Versions: []string{"TLSv1.0"}}).Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("TLSv1.0: %v", err)
	}
}

func TestHostnamesLifecycleOffline(t *testing.T) {
	t.Parallel()
	m := newOffline(t)
	for _, bad := range []string{"localhost", "*.example.com", "a..b", "-a.example.com", "web.apps.test", "ex ample.com"} {
		if _, err := m.Add("web", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	in, err := m.Add("web", "WWW.Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	if in.Hostname != "www.example.com" || in.Source != SourceSelfSigned {
		t.Fatalf("Add: %+v", in)
	}
	if _, err := m.Add("other", "www.example.com"); !errors.Is(err, ErrConflict) {
		t.Fatalf("another app's hostname: %v", err)
	}
	in = waitReady(t, m, "www.example.com")
	c, _ := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "www.example.com"})
	if c.Leaf.VerifyHostname("www.example.com") != nil {
		t.Fatal("the hostname's own certificate is not served")
	}
	if got := m.List("web"); len(got) != 1 || got[0].Serial != in.Serial {
		t.Fatalf("List = %+v", got)
	}
	if len(m.List("other")) != 0 {
		t.Fatal("List(other) shows web's hostname")
	}
	if _, err := m.Get("other", "www.example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get from another app: %v", err)
	}
	if _, err := m.Add("api", "api.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveApp("api"); err != nil || len(m.List("api")) != 0 || len(m.List("web")) != 1 {
		t.Fatalf("RemoveApp: %v, api %v, web %v", err, m.List("api"), m.List("web"))
	}
	if err := m.Remove("web", "www.example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m.hostDir("www.example.com")); !os.IsNotExist(err) {
		t.Fatalf("files left after Remove: %v", err)
	}
	if err := m.Remove("web", "www.example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	if m.AppForHost("www.example.com") != "" {
		t.Fatal("removed hostname still routed")
	}
	ents, _ := os.ReadDir(filepath.Join(m.o.Dir, hostsDir))
	for _, e := range ents {
		t.Errorf("left in hosts/: %s", e.Name())
	}
}

func TestHTTPHandlerAndForceHTTPS(t *testing.T) {
	t.Parallel()
	m := newOffline(t)
	m.tokens["tok123"] = "tok123.thumb"
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loc, ok := ForceHTTPS(r, true, "8443"); ok {
			http.Redirect(w, r, loc, http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "app")
	})
	srv := httptest.NewServer(m.HTTPHandler(next))
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, host string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, body := get("/.well-known/acme-challenge/tok123", "www.example.com"); resp.StatusCode != 200 || body != "tok123.thumb" {
		t.Fatalf("challenge: %d %q", resp.StatusCode, body)
	}
	resp, _ := get("/a/b?c=d", "web.apps.test")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://web.apps.test:8443/a/b?c=d" {
		t.Fatalf("force_https: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Unknown challenge tokens go to the app (and are not redirected).
	if resp, body := get("/.well-known/acme-challenge/other", "web.apps.test:80"); resp.StatusCode != 200 || body != "app" {
		t.Fatalf("unknown token: %d %q", resp.StatusCode, body)
	}
	r := httptest.NewRequest("GET", "http://[::1]:8080/x", nil)
	if loc, ok := ForceHTTPS(r, true, "443"); !ok || loc != "https://[::1]/x" {
		t.Fatalf("ipv6 host: %q %v", loc, ok)
	}
	if _, ok := ForceHTTPS(r, false, ""); ok {
		t.Fatal("redirect without force_https")
	}
	r.TLS = &tls.ConnectionState{}
	if _, ok := ForceHTTPS(r, true, ""); ok {
		t.Fatal("redirect of an HTTPS request")
	}
}

func TestRenewDueRecreatesExpiringDefault(t *testing.T) {
	t.Parallel()
	now := time.Now()
	m, err := New(Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test", ACMEDirectory: "off", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := m.GetCertificate(&tls.ClientHelloInfo{})
	now = before.Leaf.NotAfter.Add(-24 * time.Hour)
	if _, err := m.RenewDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	after, _ := m.GetCertificate(&tls.ClientHelloInfo{})
	if after.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) == 0 || !after.Leaf.NotAfter.After(now.Add(300*24*time.Hour)) {
		t.Fatalf("default not renewed: %v", after.Leaf.NotAfter)
	}
	if !strings.HasPrefix(after.Leaf.DNSNames[0], "*.") {
		t.Fatal(after.Leaf.DNSNames)
	}
}

func TestTLSOptionsFrom(t *testing.T) {
	yes := true
	o := TLSOptionsFrom(&types.TLSOptions{ALPN: []string{"h2"}, Versions: []string{"TLSv1.3"}, DefaultSelfSigned: &yes})
	if o == nil || o.ALPN[0] != "h2" || o.Versions[0] != "TLSv1.3" || !o.DefaultSelfSigned || o.Validate() != nil {
		t.Fatalf("got %+v", o)
	}
	if TLSOptionsFrom(nil) != nil {
		t.Fatal("nil options became non-nil")
	}
}

// FuzzNormalizeHost: hostnames come from API bodies and TLS handshakes. A
// name that is accepted is a valid DNS name, stable when normalized again,
// and safe as a directory name under hosts/.
func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"www.example.com", "WWW.Example.COM.", "../../etc", "a..b", "*.x.y", "x/y.com", ".hidden.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := normalizeHost(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if h2, err := normalizeHost(h); err != nil || h2 != h {
			t.Fatalf("normalizeHost(%q) = %q, then %q %v", in, h, h2, err)
		}
		if strings.ContainsAny(h, "/\\\x00") || strings.HasPrefix(h, ".") || filepath.Base(h) != h {
			t.Fatalf("hostname %q is not a safe directory name", h)
		}
	})
}

// Handshakes are cheap to repeat: the default certificate is ECDSA P-256,
// and a returning client resumes its session (no certificate, no
// signature) with the listener's config, for apps with tls_options (a
// config of their own per handshake) too, in TLS 1.3 and 1.2.
func TestSessionResumption(t *testing.T) {
	t.Parallel()
	m := newOffline(t)
	def, _ := m.GetCertificate(&tls.ClientHelloInfo{})
	if k, ok := def.Leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("default certificate key %T, want ECDSA P-256", def.Leaf.PublicKey)
	}
	opts := map[string]*TLSOptions{"old.apps.test": {Versions: []string{"TLSv1.2"}}, "new.apps.test": {Versions: []string{"TLSv1.3"}}}
	addr := serveTLS(t, m.TLSConfig(func(sni string) *TLSOptions { return opts[sni] }))
	for _, sni := range []string{"web.apps.test", "old.apps.test", "new.apps.test"} {
		tr := &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)}}
		var resumed []bool
		for i := 0; i < 3; i++ {
			resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
			if err != nil {
				t.Fatalf("%s: %v", sni, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			resumed = append(resumed, resp.TLS.DidResume)
		}
		if resumed[0] || !resumed[1] || !resumed[2] {
			t.Fatalf("%s: resumed %v, want a full handshake then resumptions", sni, resumed)
		}
	}
}
