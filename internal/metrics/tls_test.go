package metrics

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// A real TLS server: a good handshake is timed under its app and TLS
// version; a failed one is counted under the SNI name it asked for.
func TestTLSHandshakes(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewTLS(reg, func(sni string) string {
		if sni == "web.example.test" {
			return "web"
		}
		return ""
	})
	cert := selfSigned(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: slog.NewLogLogger(m.Handler(slog.DiscardHandler), slog.LevelDebug)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, m.Wrap(&tls.Config{Certificates: []tls.Certificate{cert}})))
	defer srv.Close()

	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "web.example.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	poll(t, "handshake timed", func() bool {
		return testutil.CollectAndCount(m.time) == 1 && histCount(t, m.time, "web", "TLS 1.2") == 1
	})
	// A client that refuses the server's certificate fails the handshake.
	_, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "web.example.test"})
	if err == nil {
		t.Fatal("handshake with an untrusted certificate succeeded")
	}
	poll(t, "handshake error counted", func() bool {
		return testutil.ToFloat64(m.errors.WithLabelValues("web", "web.example.test")) == 1
	})
}

// poll waits up to 10 s for cond.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// histCount is the sample count of one histogram of v.
func histCount(t *testing.T, v *prometheus.HistogramVec, labels ...string) uint64 {
	var m dto.Metric
	if err := v.WithLabelValues(labels...).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// selfSigned makes a certificate for web.example.test.
func selfSigned(t *testing.T) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "web.example.test"}, DNSNames: []string{"web.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
