package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/tcpproxy"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestFlycastListener: a Private tcpproxy manager in front of the proxy
// routes by listener, not Host; force_https is not applied; the headers
// name the caller and the port it called; a port held by another
// listener is served from connections handed over with Deliver.
func TestFlycastListener(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "port="+r.Header.Get("X-Forwarded-Port")+" client="+r.Header.Get("Fly-Client-Ip")+" proto="+r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	p := New("test", "local", nil)
	svc := types.MachineService{InternalPort: 8080, Ports: []types.MachinePort{{Port: intp(80), Handlers: []string{"http"}, ForceHTTPS: true}}}
	cfg := &types.MachineConfig{Image: "img", Services: []types.MachineService{svc}}
	p.SetBackend(Backend{App: "priv", MachineID: "m1", Addr: strings.TrimPrefix(backend.URL, "http://"), Service: &svc, Config: cfg}, true)

	// Two free ports: one bound by the manager, one "held elsewhere".
	free := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	bound, held := free(), free()
	heldLn, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(held))
	if err != nil {
		t.Fatal(err)
	}
	defer heldLn.Close()
	m := &tcpproxy.Manager{Picker: p, HTTP: p, ListenHost: "127.0.0.1", Private: true, Divert: func(port int) bool { return port == held }}
	defer m.Close()
	web := []tcpproxy.Service{{InternalPort: 8080, Ports: []tcpproxy.Port{{Port: bound, Handlers: []string{"http"}}, {Port: held, Handlers: []string{"http"}}}}}
	if err := m.Set("priv", web); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := heldLn.Accept()
			if err != nil {
				return
			}
			if !m.Deliver(held, c) {
				c.Close()
			}
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, port := range []int{bound, held} {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
		req.Host = "anything.example" // the listener names the app
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("port %d: %v", port, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "port=" + strconv.Itoa(port) + " client=127.0.0.1 proto=http"
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("port %d: %d %q, want 200 %q (no force_https redirect)", port, resp.StatusCode, body, want)
		}
	}
	// The public listener still redirects (force_https applies there).
	addr := serveFast(t, p)
	if resp, _ := do(t, addr, "GET", "priv.test", "/", nil, nil); resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("public listener: %d, want 301", resp.StatusCode)
	}
	if m.Deliver(free(), nil) {
		t.Fatal("Deliver to a port the manager does not have reported true")
	}
}

func TestSubscribeServices(t *testing.T) {
	p := New("test", "local", nil)
	ch, cancel := p.SubscribeServices()
	svc := types.MachineService{InternalPort: 8080}
	p.SetBackend(Backend{App: "a", MachineID: "m1", Addr: "127.0.0.1:1", Service: &svc, Config: &types.MachineConfig{Image: "i", Services: []types.MachineService{svc}}}, true)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber not signalled")
	}
	select {
	case <-p.ServicesChanged():
	case <-time.After(5 * time.Second):
		t.Fatal("ServicesChanged not signalled")
	}
	cancel()
	p.RemoveApp("a")
	select {
	case <-ch:
		t.Fatal("signalled after cancel")
	default:
	}
}
