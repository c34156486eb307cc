package flycast

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

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
		byAddr: map[netip.Addr]*served{flycastIP: {app: "web", addr: flycastIP, mgr: mgr}}}
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
