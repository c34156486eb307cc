package network

import (
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestFlycastRange(t *testing.T) {
	for _, tc := range []struct{ subnet, rng, first, second string }{
		{"fdaa:0:1::/64", "fdaa:0:1::fc:0:0/96", "fdaa:0:1::fc:0:1", "fdaa:0:1::fc:0:2"},
		{"fdaa:0:1:2::/56", "fdaa:0:1::fc:0:0/96", "fdaa:0:1::fc:0:1", "fdaa:0:1::fc:0:2"},
		{"fdaa:0:12ab::/80", "fdaa:0:12ab::fc:0:0/96", "fdaa:0:12ab::fc:0:1", "fdaa:0:12ab::fc:0:2"},
		{"fdaa:0:12ab::ff:0:0/88", "fdaa:0:12ab::fc:0:0/96", "fdaa:0:12ab::fc:0:1", "fdaa:0:12ab::fc:0:2"},
	} {
		rng, err := FlycastRange(netip.MustParsePrefix(tc.subnet))
		if err != nil {
			t.Fatalf("%s: %v", tc.subnet, err)
		}
		if rng.String() != tc.rng {
			t.Errorf("FlycastRange(%s) = %s, want %s", tc.subnet, rng, tc.rng)
		}
		a1, _ := FlycastAddr(rng, 1)
		a2, _ := FlycastAddr(rng, 2)
		if a1.String() != tc.first || a2.String() != tc.second {
			t.Errorf("%s: addresses %s %s, want %s %s", tc.subnet, a1, a2, tc.first, tc.second)
		}
		if !netip.MustParsePrefix(tc.subnet).Masked().Contains(a1) {
			t.Errorf("%s does not hold %s", tc.subnet, a1)
		}
	}
	if a, _ := FlycastAddr(netip.MustParsePrefix("fdaa:0:1::fc:0:0/96"), 0x1_0000); a.String() != "fdaa:0:1::fc:1:0" {
		t.Errorf("carry: got %s", a)
	}
	for _, bad := range []string{"fdaa:0:1::/112", "10.0.0.0/8"} {
		if _, err := FlycastRange(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("FlycastRange(%s): no error", bad)
		}
	}
	if _, err := FlycastAddr(netip.MustParsePrefix("fdaa:0:1::fc:0:0/96"), 0); err == nil {
		t.Error("address number 0: no error")
	}
}

// TestFlycastAddressOnBridge adds an address to a real bridge, serves on
// it, and takes it off again.
func TestFlycastAddressOnBridge(t *testing.T) {
	m := testManager(t)
	rng, err := m.FlycastRange()
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := FlycastAddr(rng, 7)
	if err := m.AddFlycast(addr); err != nil {
		t.Fatal(err)
	}
	if err := m.AddFlycast(addr); err != nil {
		t.Fatalf("second add: %v", err)
	}
	got, err := m.FlycastAddrs()
	if err != nil || !slices.Contains(got, addr) {
		t.Fatalf("FlycastAddrs = %v, %v; want %s", got, err, addr)
	}
	// Bound at once: no duplicate address detection to wait for.
	ln, err := net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
	if err != nil {
		t.Fatalf("listen on the Flycast address: %v", err)
	}
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	// Seen once in 40 runs under load: the first dial failed after 3 s
	// with "no route to host" (neighbour discovery on the bridge, as if the
	// address were not local), while the address was listed on the bridge;
	// not explained yet (docs/flycast.md). Machines' calls retry in
	// practice; the test retries too, with a short timeout, and says so.
	var c net.Conn
	for try := 0; ; try++ {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err == nil {
			break
		}
		if try == 4 {
			t.Fatal(err)
		}
		t.Logf("dial %s: %v; again", ln.Addr(), err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Close()
	ln.Close()
	// Never the source of the host's own connections (every host of a
	// cluster has the address: a reply to it would stay on the host that
	// answers), even toward the next Flycast address, whose longest
	// matching prefix it has.
	next, _ := FlycastAddr(rng, 8)
	u, err := net.Dial("udp", net.JoinHostPort(next.String(), "9"))
	if err != nil {
		t.Fatal(err)
	}
	src := u.LocalAddr().(*net.UDPAddr).IP
	u.Close()
	if a, _ := netip.AddrFromSlice(src); a == addr {
		t.Fatalf("the host picked the Flycast address %s as a source address", addr)
	}

	if err := m.RemoveFlycast(addr); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveFlycast(addr); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if got, _ := m.FlycastAddrs(); slices.Contains(got, addr) {
		t.Fatalf("%s still on the bridge: %v", addr, got)
	}
	if err := m.AddFlycast(netip.MustParseAddr("fdaa:0:1::5")); err == nil {
		t.Fatal("an address outside the Flycast range was added")
	}
}

// TestRedirectFlycast: with a wildcard listener of another process on a
// port, a connection from the host to [Flycast address]:port reaches the
// redirect's listener on the gateway, which reads the address and port
// called; a second New (a restarted daemon) keeps the rules, and an
// empty redirect gives the port back to the wildcard listener.
func TestRedirectFlycast(t *testing.T) {
	m := testManager(t)
	rng, err := m.FlycastRange()
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := FlycastAddr(rng, 3)
	if err := m.AddFlycast(addr); err != nil {
		t.Fatal(err)
	}
	serve := func(ln net.Listener, answer func(net.Conn) string) {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(answer(c)))
				c.Close()
			}
		}()
	}
	other, err := net.Listen("tcp", "[::]:0") // someone else's wildcard listener
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	serve(other, func(net.Conn) string { return "other" })
	port := other.Addr().(*net.TCPAddr).Port
	_, gw6 := m.Gateways()
	ours, err := net.Listen("tcp", net.JoinHostPort(gw6.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	serve(ours, func(c net.Conn) string {
		dst, err := OriginalDst(c.(*net.TCPConn))
		if err != nil {
			return err.Error()
		}
		return "ours " + dst.String()
	})
	to := ours.Addr().(*net.TCPAddr).AddrPort()
	called := netip.AddrPortFrom(addr, uint16(port)).String()
	get := func() string {
		t.Helper()
		var c net.Conn
		var err error
		for try := 0; ; try++ { // see TestFlycastAddressOnBridge
			if c, err = net.DialTimeout("tcp", called, time.Second); err == nil {
				break
			}
			if try == 4 {
				t.Fatal(err)
			}
			t.Logf("dial %s: %v; again", called, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := get(); got != "other" {
		t.Fatalf("before the redirect: %q, want the wildcard listener's answer", got)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := m.RedirectFlycast([]netip.Addr{addr}, to); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := get(), "ours "+called; got != want {
		t.Fatalf("redirected: %q, want %q", got, want)
	}
	// A restarted daemon's New keeps the redirect until it replaces it.
	if _, err := New(m.cfg, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := get(), "ours "+called; got != want {
		t.Fatalf("after a second New: %q, want %q", got, want)
	}
	if err := m.RedirectFlycast(nil, to); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "other" {
		t.Fatalf("after the redirect is emptied: %q, want the wildcard listener's answer", got)
	}
	if err := m.RedirectFlycast([]netip.Addr{netip.MustParseAddr("fdaa:0:1::5")}, to); err == nil {
		t.Fatal("an address outside the Flycast range was redirected")
	}
}
