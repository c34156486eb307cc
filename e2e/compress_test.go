package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

// fly.toml files for the compression test: compress on through
// [http_service.http_options], on through [[services.ports]] http_options,
// and not set.
const (
	gzHTTPService = `app = "gz"
primary_region = "tst"
[env]
  PORT = "8080"
[http_service]
  internal_port = 8080
  auto_stop_machines = "off"
  [http_service.http_options]
    compress = true
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`
	gzServices = `app = "gzsvc"
primary_region = "tst"
[env]
  PORT = "8080"
[[services]]
  internal_port = 8080
  protocol = "tcp"
  auto_stop_machines = "off"
  [[services.ports]]
    port = 80
    handlers = ["http"]
    http_options = { compress = true }
  [[services.http_checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`
	gzPlain = `app = "plain"
primary_region = "tst"
[env]
  PORT = "8080"
[http_service]
  internal_port = 8080
  auto_stop_machines = "off"
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`
)

// compressClient neither asks for gzip nor decodes it by itself, so the
// test sees the bytes the proxy sent.
var compressClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// proxyGet sends GET path to app through the daemon's HTTP listener with
// Accept-Encoding ae ("" for none) and returns the response with its body
// open.
func proxyGet(t *testing.T, d *harness.Daemon, app, path, ae string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", d.HTTP+path, nil)
	req.Host = app + ".test.internal"
	if ae != "" {
		req.Header.Set("Accept-Encoding", ae)
	}
	resp, err := compressClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", app, path, err)
	}
	return resp
}

// readText reads a /text response, gunzipping it if it says gzip, and
// checks the bytes against the app's X-Body-Sha256 and the length asked
// for; it returns the body's size on the wire.
func readText(t *testing.T, resp *http.Response, n int) int {
	t.Helper()
	defer resp.Body.Close()
	wire, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %.200s", resp.StatusCode, wire)
	}
	body := wire
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			t.Fatalf("Content-Encoding gzip, but the body is not: %v", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gzip body: %v", err)
		}
	}
	sum := sha256.Sum256(body)
	if len(body) != n || hex.EncodeToString(sum[:]) != resp.Header.Get("X-Body-Sha256") {
		t.Fatalf("decoded body: %d bytes, SHA-256 %x; the app sent %d bytes, SHA-256 %s", len(body), sum, n, resp.Header.Get("X-Body-Sha256"))
	}
	return len(wire)
}

func hasVaryAE(h http.Header) bool {
	return strings.Contains(strings.ToLower(strings.Join(h.Values("Vary"), ",")), "accept-encoding")
}

// http_options.compress end to end: apps deployed from fly.toml with the
// CLI, real machines of the test app, requests through the daemon's proxy.
func TestProxyCompress(t *testing.T) {
	harness.RequireRoot(t)
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	dir := t.TempDir()
	for name, cfg := range map[string]string{"gz": gzHTTPService, "gzsvc": gzServices, "plain": gzPlain} {
		p := filepath.Join(dir, name+".toml")
		if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := d.Hangar("deploy", "-c", p, "--image", ref); err != nil {
			t.Fatalf("deploy %s: %v\n%s", name, err, out)
		}
	}
	const n = 256 << 10

	t.Run("LargeTextIsGzipped", func(t *testing.T) {
		for _, path := range []string{"/text", "/text?length=1"} { // chunked, and with Content-Length
			resp := proxyGet(t, d, "gz", path, "gzip, deflate, br")
			if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
				resp.Body.Close()
				t.Fatalf("%s: Content-Encoding %q, want gzip", path, ce)
			}
			if !hasVaryAE(resp.Header) || resp.Header.Get("Content-Length") != "" {
				t.Errorf("%s: Vary %q Content-Length %q", path, resp.Header.Values("Vary"), resp.Header.Get("Content-Length"))
			}
			wire := readText(t, resp, n)
			t.Logf("%s: %d bytes sent as %d", path, n, wire)
			if wire > n/4 {
				t.Errorf("%s: %d bytes on the wire for %d of repetitive text", path, wire, n)
			}
		}
	})

	t.Run("NotGzippedWhenNotAccepted", func(t *testing.T) {
		for _, ae := range []string{"", "identity", "gzip;q=0", "br"} {
			resp := proxyGet(t, d, "gz", "/text?length=1", ae)
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q", ae, ce)
			}
			if resp.Header.Get("Content-Length") != fmt.Sprint(n) || !hasVaryAE(resp.Header) {
				t.Errorf("Accept-Encoding %q: Content-Length %q Vary %q", ae, resp.Header.Get("Content-Length"), resp.Header.Values("Vary"))
			}
			if wire := readText(t, resp, n); wire != n {
				t.Errorf("Accept-Encoding %q: %d bytes on the wire, want %d", ae, wire, n)
			}
		}
		// Too small to be worth it, and not a compressible type.
		for _, path := range []string{"/text?n=100&length=1", "/text?type=image/png"} {
			resp := proxyGet(t, d, "gz", path, "gzip")
			if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Errorf("%s: Content-Encoding %q", path, ce)
			}
			resp.Body.Close()
		}
	})

	t.Run("SSEStreams", func(t *testing.T) {
		start := time.Now()
		resp := proxyGet(t, d, "gz", "/sse?hold=3s", "gzip")
		defer resp.Body.Close()
		if ce := resp.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("SSE: Content-Encoding %q", ce)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		first := time.Since(start)
		if err != nil || !strings.HasPrefix(line, "data: first") {
			t.Fatalf("SSE: first line %q %v", line, err)
		}
		if first > 2*time.Second {
			t.Errorf("SSE: first event after %v; the response was held back", first)
		}
		rest, _ := io.ReadAll(br)
		if !strings.Contains(string(rest), "data: last") || time.Since(start) < 3*time.Second {
			t.Errorf("SSE: rest %q after %v", rest, time.Since(start))
		}
	})

	t.Run("ServicesPortsHTTPOptions", func(t *testing.T) {
		resp := proxyGet(t, d, "gzsvc", "/text", "gzip")
		if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
			resp.Body.Close()
			t.Fatalf("Content-Encoding %q, want gzip", ce)
		}
		readText(t, resp, n)
	})

	t.Run("AppWithoutCompressUntouched", func(t *testing.T) {
		resp := proxyGet(t, d, "plain", "/text?length=1", "gzip")
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || resp.Header.Get("Vary") != "" {
			t.Errorf("Content-Encoding %q Vary %q", ce, resp.Header.Get("Vary"))
		}
		if resp.Header.Get("Content-Length") != fmt.Sprint(n) {
			t.Errorf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), n)
		}
		if wire := readText(t, resp, n); wire != n {
			t.Errorf("%d bytes on the wire, want %d", wire, n)
		}
	})
}
