package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"br", "gzip"}, true}, // two header lines
		{[]string{"br, zstd"}, false},
		{[]string{"identity"}, false},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip;Q=0.001"}, true},
		{[]string{"gzip;q=1.000"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"*, gzip;q=0"}, false}, // gzip named: * does not cover it
		{[]string{"gzip;q=0, *"}, false}, // order does not matter
		{[]string{"gzip;q=0.5, *;q=0"}, true},
		{[]string{"gzip;q=0.5, identity;q=1"}, false}, // identity preferred
		{[]string{"gzip;q=0.5, identity;q=0.5"}, true},
		{[]string{"gzip, identity;q=0"}, true},
		{[]string{"gzip;q=2"}, false},     // out of range
		{[]string{"gzip;q=abc"}, false},   // malformed
		{[]string{"gzip;q="}, false},      // malformed
		{[]string{"gzip;level=9"}, true},  // other parameters are ignored
		{[]string{" , ,gzip ,"}, true},    // empty elements
		{[]string{"gzipx, xgzip"}, false}, // not gzip
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestCompressibleType(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/html; charset=utf-8":   true,
		"TEXT/PLAIN":                 true,
		"text/css":                   true,
		"text/event-stream":          false,
		"application/json":           true,
		"application/problem+json":   true,
		"application/atom+xml":       true,
		"application/javascript":     true,
		"application/wasm":           true,
		"image/svg+xml":              true,
		"image/png":                  false,
		"image/jpeg":                 false,
		"video/mp4":                  false,
		"application/octet-stream":   false,
		"application/zip":            false,
		"application/grpc":           false,
		"font/woff2":                 false,
		"":                           false,
		"application/json;charset=x": true,
	} {
		if got := compressibleType(ct); got != want {
			t.Errorf("compressibleType(%q) = %v, want %v", ct, got, want)
		}
	}
}

// bigText is a compressible body of n bytes.
func bigText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of a text body that compresses well\n", i)
	}
	return b.Bytes()[:n]
}

// compressBackend is an app with one endpoint per rule; /sse and /stream
// hold their responses open until release is closed.
func compressBackend(t *testing.T, release chan struct{}) *httptest.Server {
	big := bigText(64 << 10)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/big", "/png", "/br", "/none", "/notransform", "/vary":
			h.Set("Content-Type", "text/plain; charset=utf-8")
			h.Set("Content-Length", fmt.Sprint(len(big)))
			h.Set("Etag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
			switch r.URL.Path {
			case "/png":
				h.Set("Content-Type", "image/png")
			case "/br":
				h.Set("Content-Encoding", "br")
			case "/none":
				h.Set("Content-Encoding", "none")
			case "/notransform":
				h.Set("Cache-Control", "public, no-transform")
			case "/vary":
				h.Set("Vary", "Origin, accept-encoding")
			}
			w.Write(big)
		case "/chunked":
			h.Set("Content-Type", "application/json")
			for i := 0; i < len(big); i += 4096 {
				w.Write(big[i : i+4096])
				http.NewResponseController(w).Flush()
			}
		case "/small":
			h.Set("Content-Type", "text/plain")
			h.Set("Content-Length", "100")
			w.Write(big[:100])
		case "/404":
			h.Set("Content-Type", "text/html")
			w.WriteHeader(404)
			w.Write(big)
		case "/204":
			h.Set("Content-Type", "text/plain")
			w.WriteHeader(204)
		case "/304":
			h.Set("Content-Type", "text/plain")
			h.Set("Etag", `"v1"`)
			w.WriteHeader(304)
		case "/file":
			http.ServeContent(w, r, "f.txt", time.Unix(1e9, 0), bytes.NewReader(big))
		case "/sse":
			h.Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: first\n\n")
			http.NewResponseController(w).Flush()
			<-release
			io.WriteString(w, "data: last\n\n")
		case "/stream":
			h.Set("Content-Type", "text/html")
			w.Write(big[:8192])
			io.WriteString(w, "\nfirst part done\n")
			http.NewResponseController(w).Flush()
			<-release
			io.WriteString(w, "second part\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func compressSvc(on *bool) *types.MachineService {
	return &types.MachineService{Protocol: "tcp", InternalPort: 8080, Ports: []types.MachinePort{
		{Port: intp(80), Handlers: []string{"http"}, HTTPOptions: &types.HTTPOptions{Compress: on}},
		{Port: intp(443), Handlers: []string{"tls", "http"}, HTTPOptions: &types.HTTPOptions{Compress: on}},
	}}
}

func setCompressApp(p *Proxy, app, addr string, on *bool) {
	svc := compressSvc(on)
	p.SetBackend(Backend{App: app, MachineID: app + "-m1", Region: "local", Addr: addr, Service: svc,
		Config: &types.MachineConfig{Image: "img", Services: []types.MachineService{*svc}}}, true)
}

// rawClient neither asks for nor decodes gzip by itself.
var rawClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}

func fetch(t *testing.T, addr, method, host, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	return resp, b
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gzip body: %v", err)
	}
	return out
}

// The rules through a real proxy listener (the fast path hands the app's
// requests to net/http) and a real app: which responses are compressed,
// what happens to their headers, and that the decoded bytes are the app's.
func TestCompressRules(t *testing.T) {
	release := make(chan struct{})
	close(release) // nothing here waits
	app := compressBackend(t, release)
	p := New("test", "local", nil)
	setCompressApp(p, "z", strings.TrimPrefix(app.URL, "http://"), boolPtr(true))
	addr := serveFast(t, p)
	big := bigText(64 << 10)
	gz := map[string]string{"Accept-Encoding": "gzip, deflate, br"}

	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		gzip               bool
		vary               bool
		status             int
	}{
		{"known length", "GET", "/big", gz, true, true, 200},
		{"chunked json", "GET", "/chunked", gz, true, true, 200},
		{"error page", "GET", "/404", gz, true, true, 404},
		{"no Accept-Encoding", "GET", "/big", nil, false, true, 200},
		{"identity only", "GET", "/big", map[string]string{"Accept-Encoding": "identity"}, false, true, 200},
		{"gzip refused", "GET", "/big", map[string]string{"Accept-Encoding": "gzip;q=0, br"}, false, true, 200},
		{"HEAD", "HEAD", "/big", gz, false, true, 200},
		{"image", "GET", "/png", gz, false, false, 200},
		{"already br", "GET", "/br", gz, false, false, 200},
		{"Content-Encoding none", "GET", "/none", gz, false, false, 200},
		{"no-transform", "GET", "/notransform", gz, false, false, 200},
		{"small", "GET", "/small", gz, false, false, 200},
		{"204", "GET", "/204", gz, false, false, 204},
		{"304", "GET", "/304", gz, false, false, 304},
		{"Range", "GET", "/file", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-99"}, false, false, 206},
		{"whole file", "GET", "/file", gz, true, true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := fetch(t, addr, tc.method, "z.test", tc.path, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			ce := resp.Header.Get("Content-Encoding")
			if tc.gzip != (ce == "gzip") {
				t.Fatalf("Content-Encoding %q, want gzip=%v", ce, tc.gzip)
			}
			vary := strings.Contains(strings.ToLower(strings.Join(resp.Header.Values("Vary"), ",")), "accept-encoding")
			if vary != tc.vary {
				t.Errorf("Vary %q, want Accept-Encoding in it: %v", resp.Header.Values("Vary"), tc.vary)
			}
			if tc.gzip {
				if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
					t.Errorf("compressed response has a length: %d %q", resp.ContentLength, resp.Header.Get("Content-Length"))
				}
				if resp.Header.Get("Accept-Ranges") != "" {
					t.Errorf("compressed response offers ranges")
				}
				if et := resp.Header.Get("Etag"); et != "" && !strings.HasPrefix(et, "W/") {
					t.Errorf("compressed response has a strong ETag %q", et)
				}
				if len(body) >= len(big)/2 {
					t.Errorf("compressed to %d of %d bytes", len(body), len(big))
				}
				body = gunzip(t, body)
			}
			if tc.method == "HEAD" || tc.status == 204 || tc.status == 304 {
				if len(body) != 0 {
					t.Errorf("body of %d bytes", len(body))
				}
				return
			}
			want := big
			switch tc.path {
			case "/small":
				want = big[:100]
			case "/file":
				if tc.status == 206 {
					want = big[:100]
				}
			}
			if !bytes.Equal(body, want) {
				t.Errorf("body differs from the app's: %d bytes, want %d", len(body), len(want))
			}
			if !tc.gzip && tc.path == "/big" && resp.Header.Get("Etag") != `"v1"` {
				t.Errorf("uncompressed response's ETag changed to %q", resp.Header.Get("Etag"))
			}
		})
	}

	// The app's own Vary is kept and not repeated.
	resp, _ := fetch(t, addr, "GET", "z.test", "/vary", gz)
	if v := resp.Header.Values("Vary"); len(v) != 1 || v[0] != "Origin, accept-encoding" {
		t.Errorf("Vary %q, want the app's alone", v)
	}
}

// Compressed or not, a streamed response reaches the client as the app
// flushes it: SSE passes uncompressed, and a streamed HTML page arrives
// compressed with its first part decodable before the app ends it.
func TestCompressStreams(t *testing.T) {
	release := make(chan struct{})
	app := compressBackend(t, release)
	p := New("test", "local", nil)
	setCompressApp(p, "z", strings.TrimPrefix(app.URL, "http://"), boolPtr(true))
	addr := serveFast(t, p)
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Host = "z.test"
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// readLine reads a line within 5s; the app holds the rest back.
	readLine := func(r *bufio.Reader, what string) string {
		t.Helper()
		ch := make(chan string, 1)
		go func() {
			var line string
			for {
				l, err := r.ReadString('\n')
				line = l
				if err != nil || !strings.HasPrefix(l, "line ") {
					break
				}
			}
			ch <- line
		}()
		select {
		case l := <-ch:
			return l
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing arrived while the app held the response open; it was buffered", what)
			return ""
		}
	}

	sse := get("/sse")
	defer sse.Body.Close()
	if ce := sse.Header.Get("Content-Encoding"); ce != "" {
		t.Errorf("SSE: Content-Encoding %q", ce)
	}
	if l := readLine(bufio.NewReader(sse.Body), "SSE"); l != "data: first\n" {
		t.Errorf("SSE first line %q", l)
	}

	page := get("/stream")
	defer page.Body.Close()
	if ce := page.Header.Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("streamed page: Content-Encoding %q, want gzip", ce)
	}
	zr, err := gzip.NewReader(page.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	if l := readLine(br, "streamed page"); l != "first part done\n" {
		t.Errorf("streamed page: first part ends with %q", l)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second part\n" {
		t.Errorf("streamed page: rest %q %v", rest, err)
	}
}

// Without compress (unset or false) responses pass as the app sent them,
// on the fast path: the app is not handed to net/http.
func TestNoCompressWithoutOption(t *testing.T) {
	app := compressBackend(t, nil)
	p := New("test", "local", nil)
	setCompressApp(p, "unset", strings.TrimPrefix(app.URL, "http://"), nil)
	setCompressApp(p, "off", strings.TrimPrefix(app.URL, "http://"), boolPtr(false))
	addr := serveFast(t, p)
	big := bigText(64 << 10)
	for _, host := range []string{"unset.test", "off.test"} {
		if p.slowHost([]byte(host)) {
			t.Errorf("%s: requests leave the fast path", host)
		}
		resp, body := fetch(t, addr, "GET", host, "/big", map[string]string{"Accept-Encoding": "gzip"})
		if ce := resp.Header.Get("Content-Encoding"); ce != "" || resp.Header.Get("Vary") != "" {
			t.Errorf("%s: Content-Encoding %q Vary %q", host, ce, resp.Header.Get("Vary"))
		}
		if resp.Header.Get("Content-Length") != fmt.Sprint(len(big)) || resp.Header.Get("Etag") != `"v1"` || !bytes.Equal(body, big) {
			t.Errorf("%s: response changed: length %q etag %q, %d bytes", host, resp.Header.Get("Content-Length"), resp.Header.Get("Etag"), len(body))
		}
	}
	// Turning compress on moves the app off the fast path; off again,
	// back on it.
	setCompressApp(p, "off", strings.TrimPrefix(app.URL, "http://"), boolPtr(true))
	if !p.slowHost([]byte("off.test")) {
		t.Fatal("compress on: the fast path does not hand the app over")
	}
	resp, _ := fetch(t, addr, "GET", "off.test", "/big", map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("compress on: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	setCompressApp(p, "off", strings.TrimPrefix(app.URL, "http://"), boolPtr(false))
	if p.slowHost([]byte("off.test")) {
		t.Error("compress off again: still handed over")
	}
}

// [[statics]] of an app with compress are compressed by the same rules
// (the proxy serves them, before any machine is involved).
func TestCompressStatics(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "site"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := bigText(32 << 10)
	if err := os.WriteFile(filepath.Join(root, "site", "app.js"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	p := New("test", "local", nil)
	p.StaticsRoot = func(context.Context, string) (string, error) { return root, nil }
	svc := compressSvc(boolPtr(true))
	p.SetBackend(Backend{App: "s", MachineID: "s-m1", Region: "local", Addr: "127.0.0.1:1", Service: svc,
		Config: &types.MachineConfig{Image: "img", Services: []types.MachineService{*svc},
			Statics: []types.Static{{GuestPath: "/site", URLPrefix: "/static"}}}}, true)
	addr := serveFast(t, p)

	resp, body := fetch(t, addr, "GET", "s.test", "/static/app.js", map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("static: %d Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if et := resp.Header.Get("Etag"); !strings.HasPrefix(et, "W/") {
		t.Errorf("static: ETag %q, want a weak one", et)
	}
	if !bytes.Equal(gunzip(t, body), big) {
		t.Error("static: decoded body differs from the file")
	}
	// The weak ETag still answers 304 (If-None-Match compares weakly).
	resp, _ = fetch(t, addr, "GET", "s.test", "/static/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": resp.Header.Get("Etag")})
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match with the weak ETag: %d, want 304", resp.StatusCode)
	}
	resp, body = fetch(t, addr, "GET", "s.test", "/static/app.js", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "" || string(body) != string(big[:10]) {
		t.Errorf("Range: %d Content-Encoding %q body %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}
}

// Over TLS and HTTP/2 (the HTTPS listener serves ServeHTTP directly) the
// same rules apply.
func TestCompressHTTP2(t *testing.T) {
	release := make(chan struct{})
	close(release)
	app := compressBackend(t, release)
	p := New("test", "local", nil)
	setCompressApp(p, "z", strings.TrimPrefix(app.URL, "http://"), boolPtr(true))
	s := httptest.NewUnstartedServer(p)
	s.EnableHTTP2 = true
	s.StartTLS()
	defer s.Close()
	c := s.Client()
	c.Transport.(*http.Transport).DisableCompression = true
	for _, ae := range []string{"gzip", ""} {
		req, _ := http.NewRequest("GET", s.URL+"/chunked", nil)
		req.Host = "z.test"
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("Accept-Encoding %q: %s %v", ae, resp.Proto, err)
		}
		if got := resp.Header.Get("Content-Encoding"); (got == "gzip") != (ae == "gzip") {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", ae, got)
		}
		if ae == "gzip" {
			body = gunzip(t, body)
		}
		if !bytes.Equal(body, bigText(64<<10)) {
			t.Errorf("Accept-Encoding %q: body differs from the app's", ae)
		}
	}
}

func boolPtr(b bool) *bool { return &b }
