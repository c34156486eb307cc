package h2backend

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/types"
)

// edge is an HTTPS front (certificates from internal/certs, HTTP/2 offered
// by ALPN) in front of a reverse proxy configured as the edge proxy is.
type edge struct {
	addr string
	pool *x509.CertPool
}

func startEdge(t *testing.T, backend string, tr http.RoundTripper) *edge {
	t.Helper()
	m, err := certs.New(certs.Options{Dir: filepath.Join(t.TempDir(), "certs"), Domain: "apps.test", ACMEDirectory: "off"})
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(backend)
	rp := ReverseProxy(func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
		pr.SetXForwarded()
		pr.Out.Header.Set("Fly-Client-Proto", pr.In.Proto)
	}, tr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp, TLSConfig: m.TLSConfig(nil)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	def, _ := m.GetCertificate(&tls.ClientHelloInfo{})
	pool := x509.NewCertPool()
	pool.AddCert(def.Leaf)
	return &edge{addr: ln.Addr().String(), pool: pool}
}

func (e *edge) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: e.pool, ServerName: "web.apps.test"},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", e.addr)
		},
	}, Timeout: 20 * time.Second}
}

// echoService is a gRPC service written without generated code: unary
// Echo on StringValue, server-streaming Count on Int32Value.
var echoService = grpc.ServiceDesc{
	ServiceName: "hangar.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if in.Value == "missing" {
				return nil, status.Error(codes.NotFound, "no such thing")
			}
			md, _ := metadata.FromIncomingContext(ctx)
			return wrapperspb.String(fmt.Sprintf("echo: %s (client proto %v)", in.Value, md.Get("fly-client-proto"))), nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Count",
		ServerStreams: true,
		Handler: func(_ any, s grpc.ServerStream) error {
			n := new(wrapperspb.Int32Value)
			if err := s.RecvMsg(n); err != nil {
				return err
			}
			for i := int32(0); i < n.Value; i++ {
				if err := s.SendMsg(wrapperspb.Int32(i)); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

func TestGRPCThroughH2C(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&echoService, struct{}{})
	go gs.Serve(ln) // gRPC's own server: HTTP/2 with prior knowledge only
	t.Cleanup(gs.Stop)

	e := startEdge(t, "http://"+ln.Addr().String(), NewH2CTransport(Options{}))
	conn, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(
		credentials.NewTLS(&tls.Config{RootCAs: e.pool, ServerName: "grpc.apps.test"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, "/hangar.test.Echo/Echo", wrapperspb.String("hi"), out); err != nil {
		t.Fatalf("Echo: %v", err)
	}
	if out.Value != "echo: hi (client proto [HTTP/2.0])" {
		t.Fatalf("Echo = %q", out.Value)
	}
	// A gRPC error travels in trailers; it must arrive intact.
	err = conn.Invoke(ctx, "/hangar.test.Echo/Echo", wrapperspb.String("missing"), out)
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || st.Message() != "no such thing" {
		t.Fatalf("error status = %v, want NotFound", err)
	}
	// Server streaming.
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/hangar.test.Echo/Count")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(wrapperspb.Int32(50)); err != nil {
		t.Fatal(err)
	}
	s.CloseSend()
	var got []int32
	for {
		v := new(wrapperspb.Int32Value)
		if err := s.RecvMsg(v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("Count: %v", err)
		}
		got = append(got, v.Value)
	}
	if len(got) != 50 || got[49] != 49 {
		t.Fatalf("Count got %d messages", len(got))
	}
}

func TestH2CHandlerBackendSeesHTTP2(t *testing.T) {
	t.Parallel()
	h := h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		fmt.Fprintf(w, "%s %d", r.Proto, len(b))
		w.Header().Set("X-Sum", "done")
	}), &http2.Server{})
	be := httptest.NewServer(h)
	defer be.Close()
	e := startEdge(t, be.URL, NewH2CTransport(Options{}))
	resp, err := e.client().Post("https://web.apps.test/", "text/plain", strings.NewReader(strings.Repeat("x", 100000)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0 100000" || resp.Proto != "HTTP/2.0" || resp.Trailer.Get("X-Sum") != "done" {
		t.Fatalf("client %s got %q trailer %v; want the backend on HTTP/2.0", resp.Proto, b, resp.Trailer)
	}
}

func TestSSEFirstEventBeforeResponseEnds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select { // the response cannot end until the client saw event 1
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer be.Close()
	e := startEdge(t, be.URL, NewHTTP1Transport(Options{}))
	for _, proto := range []string{"h2", "http/1.1"} {
		c := e.client()
		if proto == "http/1.1" {
			c.Transport.(*http.Transport).ForceAttemptHTTP2 = false
		}
		start := time.Now()
		resp, err := c.Get("https://web.apps.test/events")
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		line, err := r.ReadString('\n')
		if err != nil || line != "data: first\n" {
			t.Fatalf("%s: first line %q %v", proto, line, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s: first event after %v: it was buffered until the end", proto, d)
		}
		release <- struct{}{}
		rest, _ := io.ReadAll(r)
		resp.Body.Close()
		if string(rest) != "\ndata: second\n\n" {
			t.Fatalf("%s: rest %q", proto, rest)
		}
	}
}

func wsServer(t *testing.T) *httptest.Server {
	be := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	return be
}

func dialWS(t *testing.T, e *edge) *websocket.Conn {
	t.Helper()
	cfg, err := websocket.NewConfig("wss://web.apps.test/ws", "https://web.apps.test/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.TlsConfig = &tls.Config{RootCAs: e.pool, ServerName: "web.apps.test"}
	raw, err := tls.Dial("tcp", e.addr, cfg.TlsConfig) // WebSockets ride HTTP/1.1
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, raw)
	if err != nil {
		t.Fatalf("websocket handshake through the proxy: %v", err)
	}
	return ws
}

func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	be := wsServer(t)
	e := startEdge(t, be.URL, NewHTTP1Transport(Options{IdleTimeout: 5 * time.Second}))
	ws := dialWS(t, e)
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("z", i*500))
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatal(err)
		}
		if got != msg {
			t.Fatalf("echo %d: %d bytes, want %d", i, len(got), len(msg))
		}
	}
}

func TestWebSocketIdleTimeout(t *testing.T) {
	t.Parallel()
	be := wsServer(t)
	e := startEdge(t, be.URL, NewHTTP1Transport(Options{IdleTimeout: 300 * time.Millisecond}))
	ws := dialWS(t, e)
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))
	// Busy for longer than the idle timeout: stays open.
	for i := 0; i < 8; i++ {
		time.Sleep(100 * time.Millisecond)
		websocket.Message.Send(ws, "ping")
		var got string
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "ping" {
			t.Fatalf("active websocket closed after %d round trips: %v", i, err)
		}
	}
	// Quiet: closed by the proxy well before the 10 s deadline.
	start := time.Now()
	var got string
	err := websocket.Message.Receive(ws, &got)
	if err == nil || errors.Is(err, errTimeout(err)) {
		t.Fatalf("idle websocket: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle websocket closed after %v, want about 300ms", d)
	}
}

// errTimeout returns err itself if it is a deadline error (so the test
// fails on our own deadline), else a sentinel that matches nothing.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("no match")
}

func TestIdleConnKeepsOneWayTraffic(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	ic := NewIdleConn(a, 150*time.Millisecond)
	go io.Copy(io.Discard, b)
	// Only writes for 450ms: the read side must not time out meanwhile.
	readErr := make(chan error, 1)
	go func() { _, err := ic.Read(make([]byte, 1)); readErr <- err }()
	for i := 0; i < 9; i++ {
		time.Sleep(50 * time.Millisecond)
		if _, err := ic.Write([]byte("x")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		select {
		case err := <-readErr:
			t.Fatalf("read ended while writes kept the connection busy: %v", err)
		default:
		}
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("read err %v, want ErrIdle", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection never closed")
	}
}

func TestFromHTTPOptions(t *testing.T) {
	yes, secs := true, 90
	h2, o := FromHTTPOptions(&types.HTTPOptions{H2Backend: &yes, IdleTimeout: &secs})
	if !h2 || o.IdleTimeout != 90*time.Second {
		t.Fatalf("got %v %+v", h2, o)
	}
	if h2, o := FromHTTPOptions(nil); h2 || o.IdleTimeout != 0 {
		t.Fatalf("nil: %v %+v", h2, o)
	}
}
