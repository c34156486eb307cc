package network

import (
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
