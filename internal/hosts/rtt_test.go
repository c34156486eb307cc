package hosts

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness/netdelay"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

// register makes host id of region ready on st until the test ends (or
// the returned stop: a clean shutdown, unreachable at once).
func register(t *testing.T, st store.Store, id, region string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &Registry{Store: st, TTL: time.Minute, Self: types.Host{ID: id, Region: region}}
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	return func() {
		cancel()
		waitStateOf(t, st, id, types.HostUnreachable)
	}
}

func waitStateOf(t *testing.T, st store.Store, id, want string) {
	t.Helper()
	r := &Registry{Store: st}
	deadline := time.Now().Add(20 * time.Second)
	for {
		h, err := r.Get(context.Background(), id)
		if err == nil && h.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s: %+v, %v; want %s", id, h, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The read side on the real bbolt store: Between reads either direction,
// NearestRegions orders regions by the best ready host, own region first;
// records older than RTTStale are unknown; an unreachable host's region
// leaves the order.
func TestRTTsBetweenAndNearestRegions(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	register(t, st, "a", "fra")
	register(t, st, "b", "fra")
	register(t, st, "c", "iad")
	stopD := register(t, st, "d", "syd")
	register(t, st, "e", "ams")
	register(t, st, "f", "iad")
	now := time.Now()
	for _, m := range []struct {
		from, to string
		rtt      time.Duration
	}{
		{"a", "b", 10 * time.Millisecond},
		{"a", "c", 80 * time.Millisecond},
		{"f", "a", 60 * time.Millisecond}, // measured the other way: iad's best is 60ms
		{"a", "d", 5 * time.Millisecond},  // near, but d will be unreachable
		// e (ams) is not measured: last.
	} {
		if err := PublishRTT(ctx, st, m.from, m.to, m.rtt, now); err != nil {
			t.Fatal(err)
		}
	}
	clock := now
	r := &RTTs{Store: st, Now: func() time.Time { return clock }}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d, ok := r.Between("a", "c"); !ok || d != 80*time.Millisecond {
		t.Fatalf("Between(a, c) = %v, %v; want 80ms", d, ok)
	}
	if d, ok := r.Between("a", "f"); !ok || d != 60*time.Millisecond {
		t.Fatalf("Between(a, f) = %v, %v; want f's 60ms the other way", d, ok)
	}
	if d, ok := r.Between("b", "c"); ok {
		t.Fatalf("Between(b, c) = %v; want unknown", d)
	}
	if d, ok := r.Between("a", "a"); !ok || d != 0 {
		t.Fatalf("Between(a, a) = %v, %v", d, ok)
	}
	if got, want := r.NearestRegions("a"), []string{"fra", "syd", "iad", "ams"}; !slices.Equal(got, want) {
		t.Fatalf("NearestRegions(a) = %v, want %v", got, want)
	}
	// From c: its own region first, fra by a's measurement the other way.
	if got, want := r.NearestRegions("c"), []string{"iad", "fra", "ams", "syd"}; !slices.Equal(got, want) {
		t.Fatalf("NearestRegions(c) = %v, want %v", got, want)
	}

	stopD()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Reachable("d") || !r.Reachable("a") {
		t.Fatalf("Reachable: d %v (stopped), a %v", r.Reachable("d"), r.Reachable("a"))
	}
	if got, want := r.NearestRegions("a"), []string{"fra", "iad", "ams"}; !slices.Equal(got, want) {
		t.Fatalf("NearestRegions(a) with d unreachable = %v, want %v", got, want)
	}

	clock = now.Add(RTTStale + time.Second)
	if d, ok := r.Between("a", "c"); ok {
		t.Fatalf("Between(a, c) = %v after RTTStale; want unknown", d)
	}
	if got, want := r.NearestRegions("a"), []string{"fra", "ams", "iad"}; !slices.Equal(got, want) {
		t.Fatalf("NearestRegions(a) with stale RTTs = %v, want %v", got, want)
	}
}

// Two probers on a real etcd, b reached from a through a relay that adds
// 40ms: a publishes an RTT of at least 40ms to b, b one to a; a follower
// (Run) sees both; when b stops answering, a's record of b goes.
func TestProberMeasuresThroughARelay(t *testing.T) {
	eps := etcdtest.Start(t)
	stA, stB := openEtcd(t, eps), openEtcd(t, eps)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	register(t, stA, "a", "fra")
	register(t, stB, "b", "iad")

	listen := func() net.PacketConn {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	connA, connB := listen(), listen()
	relay, err := netdelay.ListenUDP("127.0.0.1:0", connB.LocalAddr().String(), 40*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	addr := func(a net.Addr) netip.AddrPort { return a.(*net.UDPAddr).AddrPort() }
	toB := addr(relay.Addr)
	pa := &Prober{Self: "a", Conn: connA, Store: stA, Timeout: 2 * time.Second,
		Targets: func(context.Context) ([]netip.AddrPort, error) { return []netip.AddrPort{toB}, nil }}
	pb := &Prober{Self: "b", Conn: connB, Store: stB, Timeout: 2 * time.Second,
		Targets: func(context.Context) ([]netip.AddrPort, error) { return []netip.AddrPort{addr(connA.LocalAddr())}, nil }}
	go pa.Serve()
	go pb.Serve()

	follower := &RTTs{Store: openEtcd(t, eps)}
	go follower.Run(ctx, time.Hour) // changes only through the watch
	for i := 0; i < 3; i++ {
		if err := pa.Round(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pb.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the follower reads a→b and b→a", func() (bool, any) {
		ab, okAB := follower.Between("a", "b")
		_, okBA := follower.oneWay("b", "a")
		return okAB && okBA, ab
	})
	ab, _ := follower.Between("a", "b")
	if ab < 40*time.Millisecond {
		t.Fatalf("a→b through a 40ms relay measured %v", ab)
	}
	if ba, _ := follower.oneWay("b", "a"); ba >= 40*time.Millisecond {
		t.Fatalf("b→a directly measured %v, as slow as the relay", ba)
	}
	if got := follower.NearestRegions("a"); !slices.Equal(got, []string{"fra", "iad"}) {
		t.Fatalf("NearestRegions(a) = %v", got)
	}

	// b goes away: after rttMaxMisses rounds a's record of it goes too.
	relay.Close()
	for i := 0; i < rttMaxMisses; i++ {
		pa.Timeout = 100 * time.Millisecond
		if err := pa.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a's RTT to b deleted", func() (bool, any) {
		_, ok := follower.oneWay("a", "b")
		return !ok, nil
	})
}

// oneWay returns the RTT fromHost published to toHost (that direction only).
func (r *RTTs) oneWay(fromHost, toHost string) (time.Duration, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.rtt[[2]string{fromHost, toHost}]
	return time.Duration(rec.Micros) * time.Microsecond, ok
}

func waitFor(t *testing.T, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, v := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20s (%v)", what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestParseProbe(t *testing.T) {
	pong, seq, host, err := parseProbe(formatProbe(true, 42, "fra-1"))
	if err != nil || !pong || seq != 42 || host != "fra-1" {
		t.Fatalf("round trip: %v %d %q %v", pong, seq, host, err)
	}
	for _, bad := range []string{"", "hangar-rtt1 ping 1", "hangar-rtt1 pang 1 a", "hangar-rtt1 ping x a", "hangar-rtt1 ping 1 A/b", "other ping 1 a"} {
		if _, _, _, err := parseProbe([]byte(bad)); err == nil {
			t.Errorf("parseProbe(%q) accepted", bad)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add([]byte("hangar-rtt1 ping 1 a"))
	f.Add([]byte("hangar-rtt1 pong 18446744073709551615 host-1"))
	f.Add([]byte("hangar-rtt1 pong -1 a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pong, seq, host, err := parseProbe(b)
		if err != nil {
			return
		}
		p2, s2, h2, err := parseProbe(formatProbe(pong, seq, host))
		if err != nil || p2 != pong || s2 != seq || h2 != host {
			t.Fatalf("%q: not a round trip", b)
		}
	})
}
