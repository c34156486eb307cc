package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The edge proxy's protocols (issue 6) end to end: one daemon with
// --https-listen (self-signed default certificate, ACME off), real
// machines of the test app, one app per feature.
func TestProtocols(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemonWith(t, bin, "--https-listen", "127.0.0.1:0", "--acme-directory", "off")
	if d.HTTPS == "" {
		t.Fatal("the daemon wrote no https-addr")
	}
	ref := d.ImportTestApp()
	pt := &protoEnv{d: d, ref: ref, roots: defaultCertPool(t, d)}
	t.Run("HTTPSAndForceHTTPS", pt.testHTTPS)
	t.Run("GRPCThroughH2Backend", pt.testGRPC)
	t.Run("WebSocketEchoAndCloseOnStop", pt.testWebSocket)
	t.Run("WebSocketIdleTimeout", pt.testWebSocketIdle)
	t.Run("SSEFirstEventBeforeEnd", pt.testSSE)
	t.Run("TCPRangeProxyProtoV2", pt.testTCP)
	t.Run("FlyReplay", pt.testReplay)
	t.Run("Statics", pt.testStatics)
	t.Run("CustomHostnameRemovedWithApp", pt.testCustomHostname)
	t.Run("TCPWakesStoppedAppAfterRestart", pt.testTCPAfterRestart) // restarts the daemon: last
}

type protoEnv struct {
	d       *harness.Daemon
	ref     string
	roots   *x509.CertPool
	tcpBase int // the TCP app's first port
}

// defaultCertPool trusts the daemon's self-signed default certificate.
func defaultCertPool(t *testing.T, d *harness.Daemon) *x509.CertPool {
	b, err := os.ReadFile(filepath.Join(d.DataDir, "certs", "default", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("default cert.pem holds no certificate")
	}
	return pool
}

// httpsClient sends every request to the HTTPS listener, verifying the
// certificate for the URL's host; HTTP/2 when the server offers it.
func (e *protoEnv) httpsClient() *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: e.roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, e.d.HTTPS)
		},
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// httpClient sends every request to the plain HTTP listener.
func (e *protoEnv) httpClient() *http.Client {
	addr := strings.TrimPrefix(e.d.HTTP, "http://")
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *protoEnv) createApp(t *testing.T, name string) {
	t.Helper()
	if code, body := e.d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: name}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
}

func httpPorts(force bool, tlsOpts *types.TLSOptions, httpOpts *types.HTTPOptions) []types.MachinePort {
	return []types.MachinePort{
		{Port: intPtr(80), Handlers: []string{"http"}, ForceHTTPS: force, HTTPOptions: httpOpts},
		{Port: intPtr(443), Handlers: []string{"tls", "http"}, TLSOptions: tlsOpts, HTTPOptions: httpOpts},
	}
}

func get(t *testing.T, c *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitHTTPS polls until the app answers 200 on path over HTTPS.
func (e *protoEnv) waitHTTPS(t *testing.T, app, path string) {
	t.Helper()
	c := e.httpsClient()
	harness.Poll(t, app+" serving over HTTPS", 30*time.Second, func() (bool, string) {
		resp, err := c.Get("https://" + app + ".test.internal" + path)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200, fmt.Sprint(resp.StatusCode, string(b))
	})
}

// force_https: plain HTTP gets 301 to the HTTPS listener; over HTTPS the
// client speaks HTTP/2 (ALPN), the certificate is the daemon's default,
// and the app sees X-Forwarded-Proto: https and X-Forwarded-SSL: on. An
// app whose tls_options.alpn is http/1.1 gets HTTP/1.1.
func (e *protoEnv) testHTTPS(t *testing.T) {
	e.createApp(t, "secure")
	e.createApp(t, "oldtls")
	createMachine(t, e.d, "secure", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(true, nil, nil)}}})
	createMachine(t, e.d, "oldtls", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff),
			Ports: httpPorts(false, &types.TLSOptions{ALPN: []string{"http/1.1"}}, nil)}}})
	e.waitHTTPS(t, "secure", "/")
	e.waitHTTPS(t, "oldtls", "/")
	_, httpsPort, _ := net.SplitHostPort(e.d.HTTPS)

	resp, _ := get(t, e.httpClient(), "http://secure.test.internal/some/path?q=1", nil)
	want := "https://secure.test.internal:" + httpsPort + "/some/path?q=1"
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP: %d Location %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, body := get(t, e.httpsClient(), "https://secure.test.internal/headers", nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS: %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	for _, h := range []string{"X-Forwarded-Proto: [https]", "X-Forwarded-Ssl: [on]", "X-Forwarded-Port: [" + httpsPort + "]"} {
		if !strings.Contains(body, h) {
			t.Errorf("the app did not see %q:\n%s", h, body)
		}
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].VerifyHostname("secure.test.internal") != nil {
		t.Errorf("certificate does not cover secure.test.internal")
	}
	resp, _ = get(t, e.httpsClient(), "https://oldtls.test.internal/", nil)
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 || resp.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("tls_options alpn=http/1.1: %d %s ALPN %q", resp.StatusCode, resp.Proto, resp.TLS.NegotiatedProtocol)
	}
	// A plain HTTP request of an app without force_https is served.
	resp, _ = get(t, e.httpClient(), "http://oldtls.test.internal/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("plain HTTP without force_https: %d", resp.StatusCode)
	}
}

// h2_backend: a real gRPC call (the health service) over TLS + HTTP/2 to
// the proxy, h2c to the machine; and an h2c echo that keeps trailers, over
// HTTPS and over plain HTTP.
func (e *protoEnv) testGRPC(t *testing.T) {
	e.createApp(t, "grpc")
	createMachine(t, e.d, "grpc", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080", "H2C_PORT": "8081"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8081, Autostop: autostopPtr(types.AutostopOff),
			Ports: httpPorts(false, nil, &types.HTTPOptions{H2Backend: boolPtr(true)})}}})
	e.waitHTTPS(t, "grpc", "/")

	conn, err := grpc.NewClient("passthrough:///"+e.d.HTTPS,
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: e.roots, ServerName: "grpc.test.internal"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("gRPC health check through the proxy: %v", err)
	}
	if hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v", hr.Status)
	}

	for _, tc := range []struct {
		name string
		c    *http.Client
		url  string
	}{{"https", e.httpsClient(), "https://grpc.test.internal/echo"}, {"http", e.httpClient(), "http://grpc.test.internal/echo"}} {
		req, _ := http.NewRequest("POST", tc.url, strings.NewReader("ping"))
		resp, err := tc.c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "proto=HTTP/2.0") || !strings.Contains(string(b), "body=ping") {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
		if tc.name == "https" && resp.Trailer.Get("X-Echo-Trailer") != "done" {
			t.Errorf("%s: trailer %v", tc.name, resp.Trailer)
		}
	}
}

// WebSocket echo through the plain HTTP listener; stopping the machine
// sends the client a close frame (1001 going away) at once, and the stop
// does not wait for the client.
func (e *protoEnv) testWebSocket(t *testing.T) {
	e.createApp(t, "ws")
	m := createMachine(t, e.d, "ws", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		StopConfig: &types.StopConfig{Timeout: types.DurationPtr(30 * time.Second)},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff),
			Ports: httpPorts(false, nil, &types.HTTPOptions{IdleTimeout: intPtr(60)})}}})
	e.waitHTTPS(t, "ws", "/")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://ws.test.internal/ws", &websocket.DialOptions{HTTPClient: e.httpClient()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("hello %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo: %q %v, want %q", got, err, msg)
		}
	}
	read := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		read <- err
	}()
	start := time.Now()
	stopped := make(chan string, 1)
	go func() {
		code, body := e.d.Call("POST", "/v1/apps/ws/machines/"+m.ID+"/stop", nil)
		stopped <- fmt.Sprint(code, " ", body)
	}()
	select {
	case err := <-read:
		if websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Fatalf("after stop: %v, want close status 1001", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no close frame within 10s of the stop")
	}
	if s := <-stopped; !strings.HasPrefix(s, "200") {
		t.Fatalf("stop: %s", s)
	}
	harness.Poll(t, "machine stopped", 20*time.Second, func() (bool, string) {
		st := machineState(t, e.d, "ws", m.ID).State
		return st == types.StateStopped, st
	})
	if el := time.Since(start); el > 15*time.Second {
		t.Errorf("stop took %v with an open WebSocket", el)
	}
}

// SSE: the first event arrives while the app still holds the response
// open, on the fast path and over HTTP/2.
func (e *protoEnv) testSSE(t *testing.T) {
	e.createApp(t, "sse")
	createMachine(t, e.d, "sse", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(false, nil, nil)}}})
	e.waitHTTPS(t, "sse", "/")
	for _, tc := range []struct {
		name string
		c    *http.Client
		url  string
	}{{"http", e.httpClient(), "http://sse.test.internal/sse?hold=3s"}, {"https", e.httpsClient(), "https://sse.test.internal/sse?hold=3s"}} {
		start := time.Now()
		resp, err := tc.c.Get(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		first := time.Since(start)
		if err != nil || !strings.HasPrefix(line, "data: first") {
			t.Fatalf("%s: first line %q %v", tc.name, line, err)
		}
		if first > 2*time.Second {
			t.Errorf("%s: first event after %v; the response was buffered", tc.name, first)
		}
		rest, _ := io.ReadAll(br)
		resp.Body.Close()
		if !strings.Contains(string(rest), "data: last") || time.Since(start) < 3*time.Second {
			t.Errorf("%s: rest %q after %v", tc.name, rest, time.Since(start))
		}
	}
}

// freePorts finds n consecutive free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) int {
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if base+n > 65535 {
			continue
		}
		ok := true
		for i := 0; i < n; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// A raw TCP service on a port range with proxy_proto v2: the app parses
// the header (internal/proxyproto) and reports the client's address and
// the port it connected to, then echoes.
func (e *protoEnv) testTCP(t *testing.T) {
	e.createApp(t, "tcp")
	base := freePorts(t, 3)
	createMachine(t, e.d, "tcp", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080", "TCP_ECHO_PORT": "9000"},
		Services: []types.MachineService{
			{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(false, nil, nil)},
			{Protocol: "tcp", InternalPort: 9000, Autostop: autostopPtr(types.AutostopOff), Ports: []types.MachinePort{{
				StartPort: intPtr(base), EndPort: intPtr(base + 2), Handlers: []string{"proxy_proto"},
				ProxyProtoOptions: &types.ProxyProtoOptions{Version: "v2"}}}}}})
	e.waitHTTPS(t, "tcp", "/")
	e.tcpBase = base
	for i := 0; i < 3; i++ {
		port := base + i
		var c net.Conn
		var line string
		harness.Poll(t, fmt.Sprintf("TCP echo on port %d", port), 20*time.Second, func() (bool, string) {
			var err error
			c, err = net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
			if err != nil {
				return false, err.Error()
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
			if err != nil {
				c.Close()
				return false, fmt.Sprint(line, err)
			}
			return true, ""
		})
		want := fmt.Sprintf("src=%s dst=127.0.0.1:%d version=2\n", c.LocalAddr(), port)
		if line != want {
			t.Errorf("port %d: %q, want %q", port, line, want)
		}
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "ping %d\n", i)
		if got, err := br.ReadString('\n'); err != nil || got != fmt.Sprintf("echo ping %d\n", i) {
			t.Errorf("port %d echo: %q %v", port, got, err)
		}
		c.Close()
	}
}

// fly-replay: the first machine answers fly-replay instance=<other>; the
// other gets the request with fly-replay-src and the body intact. The
// first such answer on the fast path (a GET) is served again on the
// net/http path; then a 300 KB body is replayed byte for byte, and a
// body over 1 MB gets 413.
func (e *protoEnv) testReplay(t *testing.T) {
	e.createApp(t, "replay")
	cfg := types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(false, nil, nil)}}}
	m1, m2 := createMachine(t, e.d, "replay", cfg), createMachine(t, e.d, "replay", cfg)
	for _, id := range []string{m1.ID, m2.ID} {
		harness.Poll(t, "machine "+id+" serving", 30*time.Second, func() (bool, string) {
			code, body, err := viaProxy(e.d, "replay", "/", map[string]string{"Fly-Force-Instance-Id": id})
			return code == 200 && strings.Contains(body, id), fmt.Sprint(code, body, err)
		})
	}
	force := map[string]string{"Fly-Force-Instance-Id": m1.ID}
	code, body, err := viaProxy(e.d, "replay", "/replay?to="+m2.ID, force)
	if err != nil || code != 200 || !strings.Contains(body, "machine="+m2.ID) || !strings.Contains(body, "src=instance="+m1.ID+";region=tst;t=") {
		t.Fatalf("GET replayed: %d %q %v", code, body, err)
	}
	send := func(c *http.Client, url string, size int) (int, string) {
		payload := make([]byte, size)
		_, _ = rand.Read(payload)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(payload))
		req.Header.Set("Fly-Force-Instance-Id", m1.ID)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		sum := sha256.Sum256(payload)
		if resp.StatusCode == 200 && !strings.Contains(string(b), "sha256="+hex.EncodeToString(sum[:])) {
			t.Errorf("POST %s: body changed in the replay: %s", url, b)
		}
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name string
		c    *http.Client
		url  string
	}{{"http", e.httpClient(), "http://replay.test.internal/replay?to=" + m2.ID}, {"https", e.httpsClient(), "https://replay.test.internal/replay?to=" + m2.ID}} {
		if code, body := send(tc.c, tc.url, 300<<10); code != 200 || !strings.Contains(body, "machine="+m2.ID) || !strings.Contains(body, fmt.Sprintf("len=%d", 300<<10)) {
			t.Errorf("%s: 300 KB body: %d %s", tc.name, code, body)
		}
		if code, body := send(tc.c, tc.url, 2<<20); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large to replay") {
			t.Errorf("%s: 2 MB body: %d %s, want 413", tc.name, code, body)
		}
	}
	// elsewhere=true goes to the other machine.
	code, body, err = viaProxy(e.d, "replay", "/replay", force)
	if err != nil || code != 200 || !strings.Contains(body, "machine="+m2.ID) {
		t.Errorf("elsewhere=true: %d %q %v", code, body, err)
	}
}

// [[statics]] from the image's root filesystem, checked before the app:
// ETag and 304, Range and 206; other paths reach the app.
func (e *protoEnv) testStatics(t *testing.T) {
	e.createApp(t, "static")
	m := createMachine(t, e.d, "static", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Statics:  []types.Static{{GuestPath: "/etc", URLPrefix: "/static/"}},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(false, nil, nil)}}})
	e.waitHTTPS(t, "static", "/")
	for _, tc := range []struct {
		name string
		c    *http.Client
		base string
	}{{"http", e.httpClient(), "http://static.test.internal"}, {"https", e.httpsClient(), "https://static.test.internal"}} {
		resp, body := get(t, tc.c, tc.base+"/static/passwd", nil)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "root:") || etag == "" {
			t.Fatalf("%s: %d ETag %q %q", tc.name, resp.StatusCode, etag, body)
		}
		if resp, _ := get(t, tc.c, tc.base+"/static/passwd", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s: If-None-Match: %d, want 304", tc.name, resp.StatusCode)
		}
		resp, body = get(t, tc.c, tc.base+"/static/passwd", map[string]string{"Range": "bytes=0-3"})
		if resp.StatusCode != http.StatusPartialContent || body != "root" {
			t.Errorf("%s: Range: %d %q, want 206 \"root\"", tc.name, resp.StatusCode, body)
		}
		resp, body = get(t, tc.c, tc.base+"/", nil)
		if resp.StatusCode != 200 || !strings.Contains(body, "machine=") {
			t.Errorf("%s: app path: %d %q", tc.name, resp.StatusCode, body)
		}
	}
	// Statics need no running machine, and do not start one.
	if code, body := e.d.Call("POST", "/v1/apps/static/machines/"+m.ID+"/stop", nil); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	harness.Poll(t, "machine stopped", 20*time.Second, func() (bool, string) {
		st := machineState(t, e.d, "static", m.ID).State
		return st == types.StateStopped, st
	})
	resp, body := get(t, e.httpClient(), "http://static.test.internal/static/passwd", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "root:") {
		t.Fatalf("statics with the machine stopped: %d %q", resp.StatusCode, body)
	}
	if st := machineState(t, e.d, "static", m.ID).State; st != types.StateStopped {
		t.Errorf("a static file started the machine: %s", st)
	}
}

// The TCP app's machine is stopped and the daemon restarted: its ports are
// bound again from the stored config, and a connection starts the machine
// (autostart) and is served.
func (e *protoEnv) testTCPAfterRestart(t *testing.T) {
	if e.tcpBase == 0 {
		t.Skip("the TCP test did not run")
	}
	ms := e.d.Machines("tcp")
	if len(ms) != 1 {
		t.Fatalf("tcp app machines: %d", len(ms))
	}
	if code, body := e.d.Call("POST", "/v1/apps/tcp/machines/"+ms[0].ID+"/stop", nil); code != 200 {
		t.Fatalf("stop: %d %s", code, body)
	}
	harness.Poll(t, "machine stopped", 20*time.Second, func() (bool, string) {
		st := machineState(t, e.d, "tcp", ms[0].ID).State
		return st == types.StateStopped, st
	})
	e.d.Stop(syscall.SIGTERM)
	e.d.Start()
	port := e.tcpBase + 1
	var line string
	harness.Poll(t, "TCP port bound after the restart", 20*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err == nil, fmt.Sprint(line, err)
	})
	if want := fmt.Sprintf("dst=127.0.0.1:%d version=2\n", port); !strings.HasSuffix(line, want) {
		t.Fatalf("after the restart: %q, want suffix %q", line, want)
	}
	if st := machineState(t, e.d, "tcp", ms[0].ID).State; st != types.StateStarted {
		t.Errorf("machine %s after the connection, want started", st)
	}
}

// http_options.idle_timeout closes a WebSocket connection with no traffic
// either way for that long.
func (e *protoEnv) testWebSocketIdle(t *testing.T) {
	e.createApp(t, "wsidle")
	createMachine(t, e.d, "wsidle", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff),
			Ports: httpPorts(false, nil, &types.HTTPOptions{IdleTimeout: intPtr(1)})}}})
	e.waitHTTPS(t, "wsidle", "/")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://wsidle.test.internal/ws", &websocket.DialOptions{HTTPClient: e.httpClient()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	// Traffic every 500ms keeps it open past the timeout.
	for i := 0; i < 4; i++ {
		if err := c.Write(ctx, websocket.MessageText, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		time.Sleep(500 * time.Millisecond) // the traffic pattern under test
	}
	start := time.Now()
	_, _, err = c.Read(ctx)
	if err == nil {
		t.Fatal("read a message nobody sent")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("idle connection closed after %v (%v), want about 1s", el, err)
	}
}

// A custom hostname (certificate from the certificates API, self-signed
// with ACME off) routes to its app over HTTPS and plain HTTP; deleting
// the app removes it.
func (e *protoEnv) testCustomHostname(t *testing.T) {
	e.createApp(t, "custom")
	createMachine(t, e.d, "custom", types.MachineConfig{Image: e.ref, Env: map[string]string{"PORT": "8080"},
		Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080, Autostop: autostopPtr(types.AutostopOff), Ports: httpPorts(false, nil, nil)}}})
	e.waitHTTPS(t, "custom", "/")
	if code, body := e.d.Call("POST", "/v1/apps/custom/certificates", map[string]string{"hostname": "www.custom.example"}); code != http.StatusCreated {
		t.Fatalf("add certificate: %d %s", code, body)
	}
	// The hostname's own certificate is self-signed: trust nothing but
	// check that the name routes to the app.
	insecure := e.httpsClient()
	insecure.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	harness.Poll(t, "custom hostname served", 20*time.Second, func() (bool, string) {
		resp, err := insecure.Get("https://www.custom.example/")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "machine="), fmt.Sprint(resp.StatusCode, string(b))
	})
	if resp, body := get(t, e.httpClient(), "http://www.custom.example/", nil); resp.StatusCode != 200 || !strings.Contains(body, "machine=") {
		t.Fatalf("plain HTTP custom hostname: %d %q", resp.StatusCode, body)
	}
	hostDir := filepath.Join(e.d.DataDir, "certs", "hosts", "www.custom.example")
	if _, err := os.Stat(hostDir); err != nil {
		t.Fatalf("certificate directory: %v", err)
	}
	if code, body := e.d.Call("DELETE", "/v1/apps/custom", nil); code != http.StatusAccepted {
		t.Fatalf("delete app: %d %s", code, body)
	}
	harness.Poll(t, "custom hostname gone with the app", 30*time.Second, func() (bool, string) {
		resp, err := e.httpClient().Get("http://www.custom.example/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		_, statErr := os.Stat(hostDir)
		return resp.StatusCode == http.StatusNotFound && os.IsNotExist(statErr), fmt.Sprint(resp.StatusCode, statErr)
	})
}
