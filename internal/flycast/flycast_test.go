package flycast

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/network"
	"github.com/hangar-dev/hangar/internal/tcpproxy"
)

// TestDivertListener: a public listener on a wildcard address hands
// connections for a Flycast address to that app's Flycast listener and
// serves the others itself.
func TestDivertListener(t *testing.T) {
	flycastIP := netip.MustParseAddr("127.0.0.2") // stands in for a Flycast address
	pub, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := pub.Addr().(*net.TCPAddr).Port
	mgr := &tcpproxy.Manager{ListenHost: flycastIP.String(), Private: true, Divert: func(int) bool { return true },
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app, _ := tcpproxy.AppFromContext(r.Context())
			fmt.Fprintf(w, "flycast app=%s private=%v", app, tcpproxy.PrivateFromContext(r.Context()))
		})}
	defer mgr.Close()
	if err := mgr.Set("web", []tcpproxy.Service{{InternalPort: 8080, Ports: []tcpproxy.Port{{Port: port, Handlers: []string{"http"}}}}}); err != nil {
		t.Fatal(err)
	}
	f := &Server{rng: netip.PrefixFrom(flycastIP, 32), log: slog.Default(),
		byAddr: map[netip.Addr]*flycastApp{flycastIP: {app: "web", addr: flycastIP, mgr: mgr}}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "public") })}
	go srv.Serve(f.Divert(pub))
	defer srv.Close()

	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for host, want := range map[string]string{"127.0.0.1": "public", flycastIP.String(): "flycast app=web private=true"} {
		resp, err := c.Get("http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/")
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Fatalf("%s: %q, want %q", host, b, want)
		}
	}
	// A Flycast address whose app serves no such port: closed, not served
	// by Host.
	other, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	go http.Serve(f.Divert(other), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "public") }))
	defer other.Close()
	if resp, err := c.Get("http://" + net.JoinHostPort(flycastIP.String(), strconv.Itoa(other.Addr().(*net.TCPAddr).Port)) + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("a port the app does not serve over Flycast answered %s", resp.Status)
	}
}

// TestFlycastListenerByOriginalDst: with another process's wildcard
// listener on the app's port, a host connection to [Flycast address]:port
// is steered (real nftables) to the Flycast listener, which hands it to
// the app's manager with the called address as its local address; a port
// the app does not serve is reset.
func TestFlycastListenerByOriginalDst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a bridge and nftables rules need root")
	}
	n := rand.Intn(200) + 20
	netm, err := network.New(network.Config{Bridge: fmt.Sprintf("hgd%04x", rand.Intn(0xffff)),
		Subnet4: fmt.Sprintf("10.%d.%d.0/24", 200+rand.Intn(50), n), Subnet6: fmt.Sprintf("fdaa:0:%x::/64", 0xf000+rand.Intn(0xf00))}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netm.RemoveBridge(); err != nil {
			t.Errorf("remove bridge: %v", err)
		}
	})
	rng, err := netm.FlycastRange()
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := network.FlycastAddr(rng, 1)
	if err := netm.AddFlycast(addr); err != nil {
		t.Fatal(err)
	}
	other, err := net.Listen("tcp", "[::]:0") // another process's wildcard listener
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go http.Serve(other, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") }))
	port := other.Addr().(*net.TCPAddr).Port
	mgr := &tcpproxy.Manager{ListenHost: addr.String(), Private: true, Divert: func(int) bool { return true },
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			app, _ := tcpproxy.AppFromContext(r.Context())
			fmt.Fprintf(w, "flycast app=%s local=%v", app, r.Context().Value(http.LocalAddrContextKey))
		})}
	if err := mgr.Set("web", []tcpproxy.Service{{InternalPort: 8080, Ports: []tcpproxy.Port{{Port: port, Handlers: []string{"http"}}}}}); err != nil {
		t.Fatal(err)
	}
	f := &Server{netm: netm, rng: rng, log: slog.Default(), apps: map[string]*flycastApp{}, byAddr: map[netip.Addr]*flycastApp{}}
	fa := &flycastApp{app: "web", addr: addr, mgr: mgr}
	f.apps["web"], f.byAddr[addr] = fa, fa
	if err := f.redirect([]netip.Addr{addr}); err != nil {
		t.Fatal(err)
	}
	f.startServing()
	defer f.closeAll()

	called := net.JoinHostPort(addr.String(), strconv.Itoa(port))
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var body string
	for try := 0; ; try++ { // see network.TestFlycastAddressOnBridge
		resp, err := c.Get("http://" + called + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if try == 4 {
			t.Fatal(err)
		}
		t.Logf("get %s: %v; again", called, err)
	}
	if want := "flycast app=web local=" + called; body != want {
		t.Fatalf("[flycast]:%d answered %q, want %q", port, body, want)
	}
	// A port the app does not serve: reset, not the other listener's.
	other2, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other2.Close()
	go http.Serve(other2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") }))
	if resp, err := c.Get("http://" + net.JoinHostPort(addr.String(), strconv.Itoa(other2.Addr().(*net.TCPAddr).Port)) + "/"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("a port the app does not serve answered %s %q", resp.Status, b)
	}
}

// A server stopped after binding its listener but before serving (a
// daemon stopped while starting) closes at once instead of waiting for a
// serve that never ran.
func TestCloseBeforeServing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Server{log: slog.Default(), apps: map[string]*flycastApp{}, byAddr: map[netip.Addr]*flycastApp{}, ln: ln}
	done := make(chan struct{})
	go func() { f.closeAll(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("closeAll of a server that never served did not return")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("the listener is still open")
	}
}
