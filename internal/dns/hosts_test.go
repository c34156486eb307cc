package dns

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestAcrossHosts: the server of host a, with the hosts and their RTTs
// read from a real bbolt store by hosts.RTTs. Machines of every reachable
// host answer AAAA; A (IPv4, local to a host) only a's; the machines of
// an unreachable host are in no answer; top<N>.nearest orders regions and
// hosts by the measured RTT; reverse names of another host's /64 are
// answered.
func TestAcrossHosts(t *testing.T) {
	t.Parallel()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, h := range []struct{ id, region string }{{"a", "fra"}, {"b", "fra"}, {"c", "iad"}, {"e", "ams"}, {"d", "fra"}} {
		hctx, stop := context.WithCancel(ctx)
		r := &hosts.Registry{Store: st, Self: types.Host{ID: h.id, Region: h.region}}
		if err := r.Register(hctx); err != nil {
			t.Fatal(err)
		}
		if h.id == "d" {
			stop() // d's daemon stops: unreachable
		} else {
			defer stop()
		}
	}
	now := time.Now()
	for to, rtt := range map[string]time.Duration{"b": 10 * time.Millisecond, "c": 80 * time.Millisecond, "e": 40 * time.Millisecond, "d": time.Millisecond} {
		if err := hosts.PublishRTT(ctx, st, "a", to, rtt, now); err != nil {
			t.Fatal(err)
		}
	}
	rtts := &hosts.RTTs{Store: st}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := rtts.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if !rtts.Reachable("d") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("d still reachable")
		}
		time.Sleep(20 * time.Millisecond)
	}

	reg := NewRegistry()
	reg.PutApp("web")
	reg.PutApp("api")
	on := func(m Machine, host string) Machine { m.HostID = host; reg.PutMachine(m); return m }
	on(machine("web", "wa", "fra", "app", types.StateStarted, "fdaa:0:1::2", "172.19.0.2"), "a")
	on(machine("web", "wb", "fra", "app", types.StateStarted, "fdaa:0:1:1::2", "172.20.0.2"), "b")
	on(machine("web", "wc", "iad", "app", types.StateStarted, "fdaa:0:1:2::2", "172.21.0.2"), "c")
	on(machine("web", "wd", "fra", "app", types.StateStarted, "fdaa:0:1:3::2", "172.22.0.2"), "d")
	on(machine("api", "ac", "iad", "app", types.StateStarted, "fdaa:0:1:2::3", "172.21.0.3"), "c")
	on(machine("api", "ae", "ams", "app", types.StateStarted, "fdaa:0:1:4::2", "172.23.0.2"), "e")
	on(machine("api", "ad", "fra", "app", types.StateStarted, "fdaa:0:1:3::3", "172.22.0.3"), "d")

	s := startServer(t, Options{Source: reg, Region: "fra", Host: "a", Hosts: rtts,
		Private: []netip.Prefix{netip.MustParsePrefix("fdaa:0:1::/48")}})
	addr := s.Addrs()[0]
	ask := func(name string, qtype uint16) []string {
		t.Helper()
		return answers(exchange(t, addr, "udp", name, qtype))
	}
	if got, want := ask("web.internal", mdns.TypeAAAA), []string{"fdaa:0:1:1::2", "fdaa:0:1:2::2", "fdaa:0:1::2"}; !slices.Equal(got, want) {
		t.Fatalf("AAAA web.internal = %v, want %v (every reachable host's, not d's)", got, want)
	}
	if got, want := ask("web.internal", mdns.TypeA), []string{"172.19.0.2"}; !slices.Equal(got, want) {
		t.Fatalf("A web.internal = %v, want only this host's %v", got, want)
	}
	if r := exchange(t, addr, "udp", "wc.vm.web.internal", mdns.TypeA); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("A of another host's machine: %s %v, want NOERROR without answers", mdns.RcodeToString[r.Rcode], r.Answer)
	}
	if got := ask("wc.vm.web.internal", mdns.TypeAAAA); !slices.Equal(got, []string{"fdaa:0:1:2::2"}) {
		t.Fatalf("AAAA wc.vm.web.internal = %v", got)
	}
	if r := exchange(t, addr, "udp", "wd.vm.web.internal", mdns.TypeAAAA); r.Rcode != mdns.RcodeNameError {
		t.Fatalf("a machine of an unreachable host: %s %v, want NXDOMAIN", mdns.RcodeToString[r.Rcode], r.Answer)
	}
	if got := ask("iad.web.internal", mdns.TypeAAAA); !slices.Equal(got, []string{"fdaa:0:1:2::2"}) {
		t.Fatalf("iad.web.internal = %v", got)
	}
	if got, want := ask("vms.web.internal", mdns.TypeTXT), []string{"wa fra,wb fra,wc iad"}; !slices.Equal(got, want) {
		t.Fatalf("vms.web.internal = %v, want %v", got, want)
	}
	if got, want := ask("regions.api.internal", mdns.TypeTXT), []string{"ams,iad"}; !slices.Equal(got, want) {
		t.Fatalf("regions.api.internal = %v, want %v", got, want)
	}
	// Nearest, in order (answers() sorts: ask one at a time).
	top := func(n int, app string) []string {
		t.Helper()
		r := exchange(t, addr, "udp", fmt.Sprintf("top%d.nearest.of.%s.internal", n, app), mdns.TypeAAAA)
		var out []string
		for _, rr := range r.Answer {
			out = append(out, rr.(*mdns.AAAA).AAAA.String())
		}
		return out
	}
	if got, want := top(3, "web"), []string{"fdaa:0:1::2", "fdaa:0:1:1::2", "fdaa:0:1:2::2"}; !slices.Equal(got, want) {
		t.Fatalf("top3 web = %v, want this host's, b's (fra, 10ms), c's (iad)", got)
	}
	if got, want := top(1, "api"), []string{"fdaa:0:1:4::2"}; !slices.Equal(got, want) {
		t.Fatalf("top1 api = %v, want e's (ams, 40ms) before c's (iad, 80ms); d's (fra) is unreachable", got)
	}
	if r := exchange(t, addr, "udp", "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.a.a.d.f.ip6.arpa", mdns.TypePTR); len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "wc.vm.web.internal.") {
		t.Fatalf("PTR of c's machine: %s %v", mdns.RcodeToString[r.Rcode], r.Answer)
	}
	if got := ask("_instances.internal", mdns.TypeTXT); len(got) != 1 || strings.Contains(got[0], "wd") || !strings.Contains(got[0], "instance=wc,app=web,ip=fdaa:0:1:2::2,region=iad") {
		t.Fatalf("_instances.internal = %v", got)
	}
}
