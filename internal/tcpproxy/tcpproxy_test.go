package tcpproxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/proxyproto"
)

// freeRange finds n consecutive free loopback ports.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		// Below the kernel's ephemeral range (32768+), so that ports the
		// system hands out to other sockets meanwhile do not collide.
		base := 10000 + mrand.IntN(22000)
		var lns []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// echo is a machine: it reads an optional PROXY header, says who the
// client is, then echoes.
type echo struct {
	ln       net.Listener
	name     string
	proxyHdr bool
	mu       sync.Mutex
	headers  []proxyproto.Header
}

func newEcho(t *testing.T, name string, proxyHdr bool) *echo {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, name: name, proxyHdr: proxyHdr}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var r io.Reader = c
				from := c.RemoteAddr().String()
				if e.proxyHdr {
					pc, err := proxyproto.NewConn(c)
					if err != nil {
						fmt.Fprintf(c, "bad header: %v\n", err)
						return
					}
					e.mu.Lock()
					e.headers = append(e.headers, pc.Header)
					e.mu.Unlock()
					r, from = pc, pc.RemoteAddr().String()
				}
				fmt.Fprintf(c, "%s sees %s\n", e.name, from)
				io.Copy(c, r)
			}()
		}
	}()
	return e
}

type rrPicker struct {
	addrs    []string
	n        atomic.Int32
	inflight atomic.Int32
	err      error
}

func (p *rrPicker) Pick(ctx context.Context, app string, port int) (string, func(), error) {
	if p.err != nil {
		return "", nil, p.err
	}
	p.inflight.Add(1)
	i := int(p.n.Add(1)-1) % len(p.addrs)
	return p.addrs[i], func() { p.inflight.Add(-1) }, nil
}

func newManager(t *testing.T, p Picker) *Manager {
	m := &Manager{Picker: p, ListenHost: "127.0.0.1", IdleTimeout: 5 * time.Second}
	t.Cleanup(m.Close)
	return m
}

func roundTrip(t *testing.T, port int, msg string) (greeting, echoed string, local net.Addr) {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	greeting, err = r.ReadString('\n')
	if err != nil {
		t.Fatalf("port %d: greeting: %v", port, err)
	}
	fmt.Fprint(c, msg)
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("port %d: echo: %v", port, err)
	}
	return strings.TrimSpace(greeting), string(b), c.LocalAddr()
}

func TestEchoOnPortRangeWithProxyProtoV2(t *testing.T) {
	t.Parallel()
	a, b := newEcho(t, "a", true), newEcho(t, "b", true)
	p := &rrPicker{addrs: []string{a.ln.Addr().String(), b.ln.Addr().String()}}
	m := newManager(t, p)
	base := freeRange(t, 3)
	err := m.Set("db", []Service{{InternalPort: 5432, Ports: []Port{
		{StartPort: base, EndPort: base + 2, Handlers: []string{HandlerProxyProto}, ProxyProtoVersion: "v2"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Ports("db"); len(got) != 3 || got[0] != base || got[2] != base+2 {
		t.Fatalf("Ports = %v", got)
	}
	seen := map[string]bool{}
	for port := base; port <= base+2; port++ {
		msg := strings.Repeat("payload-"+strconv.Itoa(port), 5000)
		greeting, echoed, local := roundTrip(t, port, msg)
		if echoed != msg {
			t.Fatalf("port %d: echoed %d bytes, want %d", port, len(echoed), len(msg))
		}
		name, from, _ := strings.Cut(greeting, " sees ")
		seen[name] = true
		if from != local.String() {
			t.Errorf("port %d: machine sees client %s, want %s (from the PROXY header)", port, from, local)
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("connections went to %v, want both machines", seen)
	}
	var hs []proxyproto.Header
	a.mu.Lock()
	hs = append(hs, a.headers...)
	a.mu.Unlock()
	b.mu.Lock()
	hs = append(hs, b.headers...)
	b.mu.Unlock()
	dports := map[uint16]bool{}
	for _, h := range hs {
		if h.Version != 2 || h.Command != proxyproto.Proxy {
			t.Errorf("header %+v, want v2 PROXY", h)
		}
		dports[h.Destination.Port()] = true
	}
	if len(dports) != 3 {
		t.Errorf("destination ports in headers %v, want the 3 ports of the range", dports)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections never released", p.inflight.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyProtoV1AndPassthrough(t *testing.T) {
	t.Parallel()
	withHdr, plain := newEcho(t, "hdr", true), newEcho(t, "plain", false)
	base := freeRange(t, 2)
	m1 := newManager(t, &rrPicker{addrs: []string{withHdr.ln.Addr().String()}})
	if err := m1.Set("a", []Service{{Ports: []Port{{Port: base, Handlers: []string{HandlerProxyProto}}}}}); err != nil {
		t.Fatal(err)
	}
	m2 := newManager(t, &rrPicker{addrs: []string{plain.ln.Addr().String()}})
	if err := m2.Set("b", []Service{{Ports: []Port{{Port: base + 1}}}}); err != nil {
		t.Fatal(err)
	}
	g, e, local := roundTrip(t, base, "x")
	if g != "hdr sees "+local.String() || e != "x" {
		t.Fatalf("v1: %q %q", g, e)
	}
	withHdr.mu.Lock()
	if h := withHdr.headers[0]; h.Version != 1 {
		t.Errorf("header version %d, want 1 (the default)", h.Version)
	}
	withHdr.mu.Unlock()
	g, e, local = roundTrip(t, base+1, "y")
	if strings.Contains(g, local.String()) || !strings.HasPrefix(g, "plain sees 127.0.0.1:") || e != "y" {
		t.Fatalf("passthrough: %q %q (client %s)", g, e, local)
	}
}

func selfSigned(t testing.TB, host string) (*tls.Config, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func TestTLSHandlerTerminates(t *testing.T) {
	t.Parallel()
	e := newEcho(t, "pg", false)
	m := newManager(t, &rrPicker{addrs: []string{e.ln.Addr().String()}})
	cfg, pool := selfSigned(t, "db.example.test")
	m.TLSConfig = func(app string) *tls.Config { return cfg }
	base := freeRange(t, 1)
	if err := m.Set("db", []Service{{Ports: []Port{{Port: base, Handlers: []string{HandlerTLS}}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(base), &tls.Config{RootCAs: pool, ServerName: "db.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	g, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(g, "pg sees 127.0.0.1:") {
		t.Fatalf("greeting %q %v", g, err)
	}
	fmt.Fprint(c, "over tls\n")
	line, err := r.ReadString('\n')
	if err != nil || line != "over tls\n" {
		t.Fatalf("echo %q %v (the machine must get plain bytes)", line, err)
	}
}

func TestIdleTimeoutClosesConnection(t *testing.T) {
	t.Parallel()
	e := newEcho(t, "idle", false)
	m := newManager(t, &rrPicker{addrs: []string{e.ln.Addr().String()}})
	base := freeRange(t, 1)
	if err := m.Set("a", []Service{{Ports: []Port{{Port: base}}, IdleTimeout: 200 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(base))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// Traffic keeps it open past the timeout...
	for i := 0; i < 6; i++ {
		time.Sleep(80 * time.Millisecond)
		fmt.Fprintf(c, "%d\n", i)
		if l, err := r.ReadString('\n'); err != nil || l != fmt.Sprintf("%d\n", i) {
			t.Fatalf("active connection: %q %v", l, err)
		}
	}
	// ...silence closes it.
	start := time.Now()
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Fatalf("idle connection: read err %v, want it closed", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v, want about 200ms", d)
	}
}

func TestSetReconcilesAndRefusesConflicts(t *testing.T) {
	t.Parallel()
	e := newEcho(t, "x", false)
	m := newManager(t, &rrPicker{addrs: []string{e.ln.Addr().String()}})
	base := freeRange(t, 3)
	if err := m.Set("a", []Service{{Ports: []Port{{Port: base}, {Port: base + 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("b", []Service{{Ports: []Port{{Port: base + 1}}}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("second app on a taken port: %v, want ErrPortInUse", err)
	}
	if err := m.Set("a", []Service{{Ports: []Port{{Port: base + 1}, {Port: base + 2}}}}); err != nil {
		t.Fatal(err)
	}
	if got := m.Ports("a"); fmt.Sprint(got) != fmt.Sprint([]int{base + 1, base + 2}) {
		t.Fatalf("Ports = %v", got)
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(base)); err == nil {
		c.Close()
		t.Fatalf("port %d still open after it left the config", base)
	}
	for _, bad := range []Service{
		{Ports: []Port{{StartPort: 10, EndPort: 5}}},
		{Ports: []Port{{Port: base, Handlers: []string{"http2"}}}},
		{Ports: []Port{{Port: base, ProxyProtoVersion: "v3"}}},
		{Ports: []Port{{Port: 70000}}},
	} {
		if err := m.Set("c", []Service{bad}); err == nil {
			t.Errorf("Set(%+v) accepted", bad)
		}
	}
	m.Remove("a")
	if len(m.Ports("a")) != 0 {
		t.Fatal("Remove left ports")
	}
}

func TestPickerErrorClosesAndHTTPHandler(t *testing.T) {
	t.Parallel()
	m := newManager(t, &rrPicker{err: errors.New("over hard_limit")})
	m.HTTP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, _ := AppFromContext(r.Context())
		fmt.Fprintf(w, "app=%s", app)
	})
	base := freeRange(t, 2)
	if err := m.Set("web", []Service{{Ports: []Port{{Port: base}, {Port: base + 1, Handlers: []string{HandlerHTTP}}}}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(base))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %d, %v; want the connection closed", n, err)
	}
	c.Close()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(base+1) + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "app=web" {
		t.Fatalf("http port: %q", body)
	}
}

// TestShutdownFinishesDelivered: connections handed to a Private manager
// just before Shutdown are still accepted, and their requests in flight
// answered, before Shutdown returns; after it the port takes none.
func TestShutdownFinishesDelivered(t *testing.T) {
	t.Parallel()
	m := &Manager{Private: true, Divert: func(int) bool { return true }, ListenHost: "127.0.0.1",
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(200 * time.Millisecond)
			io.WriteString(w, "done")
		})}
	t.Cleanup(m.Close)
	if err := m.Set("web", []Service{{InternalPort: 8080, Ports: []Port{{Port: 80, Handlers: []string{HandlerHTTP}}}}}); err != nil {
		t.Fatal(err)
	}
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	const n = 8
	answers := make(chan string, n)
	for i := 0; i < n; i++ {
		go func() {
			c, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				answers <- err.Error()
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.flycast\r\nConnection: close\r\n\r\n")
			b, err := io.ReadAll(c)
			answers <- fmt.Sprint(string(b), err)
		}()
	}
	for i := 0; i < n; i++ {
		c, err := front.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if !m.Deliver(80, c) {
			t.Fatal("Deliver refused a served port")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := 0; i < n; i++ {
		select {
		case got := <-answers:
			if !strings.HasPrefix(got, "HTTP/1.1 200") || !strings.Contains(got, "done") {
				t.Fatalf("connection %d handed over before Shutdown: %q", i, got)
			}
		default:
			t.Fatalf("connection %d not answered when Shutdown returned", i)
		}
	}
	if c1, c2 := net.Pipe(); m.Deliver(80, c1) {
		t.Fatal("Deliver took a connection after Shutdown")
	} else {
		c1.Close()
		c2.Close()
	}
}
