package dns

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/hangar-dev/hangar/internal/store"
)

// TestFlycastNames: <app>.flycast is the app's Flycast address (AAAA
// only), NXDOMAIN for an app without one, and .internal is unchanged.
func TestFlycastNames(t *testing.T) {
	t.Parallel()
	reg := fixture()
	reg.PutFlycast("web", netip.MustParseAddr("fdaa::fc:0:1"))
	allow := append([]netip.Prefix{netip.MustParsePrefix("fdaa::/64")}, loopback...)
	s := startServer(t, Options{Source: reg, Allow: allow})
	addr := s.Addrs()[0]
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, addr, network, "WEB.flycast", mdns.TypeAAAA)
		if r.Rcode != mdns.RcodeSuccess || !r.Authoritative || !slices.Equal(answers(r), []string{"fdaa::fc:0:1"}) {
			t.Fatalf("AAAA web.flycast over %s: %s %v", network, mdns.RcodeToString[r.Rcode], answers(r))
		}
		if r.Answer[0].Header().Ttl != TTL {
			t.Errorf("TTL %d, want %d", r.Answer[0].Header().Ttl, TTL)
		}
	}
	for _, c := range []struct {
		name  string
		qtype uint16
		rcode int
	}{
		{"web.flycast", mdns.TypeA, mdns.RcodeSuccess},   // NODATA: IPv6 only
		{"web.flycast", mdns.TypeTXT, mdns.RcodeSuccess}, // NODATA
		{"db.flycast", mdns.TypeAAAA, mdns.RcodeNameError},
		{"nosuch.flycast", mdns.TypeAAAA, mdns.RcodeNameError},
		{"x.web.flycast", mdns.TypeAAAA, mdns.RcodeNameError},
		{"flycast", mdns.TypeAAAA, mdns.RcodeSuccess},
	} {
		r := exchange(t, addr, "udp", c.name, c.qtype)
		if r.Rcode != c.rcode || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Name != "flycast." {
			t.Errorf("%s %s: %s answer %v ns %v, want %s with no answer and the flycast SOA", c.name, mdns.TypeToString[c.qtype],
				mdns.RcodeToString[r.Rcode], r.Answer, r.Ns, mdns.RcodeToString[c.rcode])
		}
	}
	if r := exchange(t, addr, "udp", "flycast", mdns.TypeSOA); len(r.Answer) != 1 {
		t.Errorf("SOA flycast: %v", r.Answer)
	}
	// .internal still answers machines, not the Flycast address.
	if got := answers(exchange(t, addr, "udp", "web.internal", mdns.TypeAAAA)); slices.Contains(got, "fdaa::fc:0:1") || len(got) == 0 {
		t.Errorf("web.internal = %v", got)
	}
	// The reverse name of a Flycast address names the app.
	rev, _ := mdns.ReverseAddr("fdaa::fc:0:1")
	if r := exchange(t, addr, "udp", rev, mdns.TypePTR); len(r.Answer) != 1 || r.Answer[0].(*mdns.PTR).Ptr != "web.flycast." {
		t.Errorf("PTR of the Flycast address: %s %v", mdns.RcodeToString[r.Rcode], r.Answer)
	}
	reg.DeleteFlycast("web")
	if r := exchange(t, addr, "udp", "web.flycast", mdns.TypeAAAA); r.Rcode != mdns.RcodeNameError {
		t.Errorf("after release: %s, want NXDOMAIN", mdns.RcodeToString[r.Rcode])
	}
}

// TestFollowFlycast: addresses allocated and released in a real store
// show up in and leave the registry.
func TestFollowFlycast(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(key, val string) {
		t.Helper()
		if _, err := st.Put(ctx, key, []byte(val), store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	put("flycast/web", `{"address":"fdaa::fc:0:1","type":"private_v6","n":1}`)
	put("flycast/bad", `{"address":"not an address"}`)
	reg := NewRegistry()
	go Follow(ctx, st, reg, nil)
	waitFor := func(what string, want map[string]netip.Addr) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := reg.Flycast()
			if len(got) == len(want) && func() bool {
				for k, v := range want {
					if got[k] != v {
						return false
					}
				}
				return true
			}() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v, want %v", what, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("loaded", map[string]netip.Addr{"web": netip.MustParseAddr("fdaa::fc:0:1")})
	put("flycast/db", `{"address":"fdaa::fc:0:2"}`)
	waitFor("allocated", map[string]netip.Addr{"web": netip.MustParseAddr("fdaa::fc:0:1"), "db": netip.MustParseAddr("fdaa::fc:0:2")})
	if _, err := st.Delete(ctx, "flycast/web", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	waitFor("released", map[string]netip.Addr{"db": netip.MustParseAddr("fdaa::fc:0:2")})
}

func TestParseFlycast(t *testing.T) {
	for name, want := range map[string]string{"web.flycast.": "web", "Web.FLYCAST": "web", "flycast.": "", "a.b.flycast": ".", ".flycast": "."} {
		if got, ok := parseFlycast(name); !ok || got != want {
			t.Errorf("parseFlycast(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	for _, name := range []string{"web.internal", "flycast.internal", "webflycast", "x.flycast.io"} {
		if _, ok := parseFlycast(name); ok {
			t.Errorf("parseFlycast(%q): in the zone", name)
		}
	}
}
