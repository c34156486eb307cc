package dns

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseName(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		want   query
		inZone bool
	}{
		{"internal.", query{kind: kindZone}, true},
		{"_apps.internal.", query{kind: kindApps}, true},
		{"_instances.internal", query{kind: kindInstances}, true},
		{"My-App.INTERNAL.", query{kind: kindApp, app: "my-app"}, true},
		{"global.web.internal.", query{kind: kindApp, app: "web"}, true},
		{"vms.web.internal.", query{kind: kindVMs, app: "web"}, true},
		{"regions.web.internal.", query{kind: kindRegions, app: "web"}, true},
		{"ams.web.internal.", query{kind: kindRegion, arg: "ams", app: "web"}, true},
		{"148ed193b95948.vm.web.internal.", query{kind: kindVM, arg: "148ed193b95948", app: "web"}, true},
		{"worker.process.web.internal.", query{kind: kindProcess, arg: "worker", app: "web"}, true},
		{"top3.nearest.of.web.internal.", query{kind: kindNearest, count: 3, app: "web"}, true},
		{"primary.role.kv._metadata.web.internal.", query{kind: kindMetadata, arg: "primary", key: "role", app: "web"}, true},
		{"top0.nearest.of.web.internal.", query{}, true},
		{"top01.nearest.of.web.internal.", query{}, true},
		{"top1001.nearest.of.web.internal.", query{}, true},
		{"topx.nearest.of.web.internal.", query{}, true},
		{"a.b.c.d.internal.", query{}, true},
		{"a..internal.", query{}, true},
		{`a\.b.internal.`, query{}, true},
		{".internal.", query{}, true},
		{"example.com.", query{}, false},
		{"internal.example.com.", query{}, false},
		{"notinternal.", query{}, false},
		{"", query{}, false},
	}
	for _, c := range cases {
		q, in := parseName(c.name)
		if q != c.want || in != c.inZone {
			t.Errorf("parseName(%q) = %+v, %v; want %+v, %v", c.name, q, in, c.want, c.inZone)
		}
	}
}

// FuzzParseName: parsing never panics, every parsed name is in the zone,
// and a parsed query's canonical name parses back to the same query.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"web.internal.", "_apps.internal", "top2.nearest.of.web.internal.", "a.vm.b.internal",
		"v.k.kv._metadata.app.internal.", "g.process.a.internal", "x.y.z.internal", `a\.b.internal`, "INTERNAL", "..internal"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q, in := parseName(name)
		if q.kind == kindNone {
			return
		}
		if !in {
			t.Fatalf("%q: parsed as %+v outside the zone", name, q)
		}
		canon := q.name()
		q2, in2 := parseName(canon)
		if !in2 || q2 != q {
			t.Fatalf("%q → %+v → %q → %+v", name, q, canon, q2)
		}
		if q.kind == kindNearest && (q.count < 1 || q.count > maxNearest) {
			t.Fatalf("%q: count %d", name, q.count)
		}
	})
}

func TestParseReverse(t *testing.T) {
	t.Parallel()
	for _, ip := range []string{"172.19.0.2", "0.0.0.0", "255.255.255.255", "fdaa:0:1::2", "::", "2001:db8::ff00:42:8329"} {
		rev, err := mdns.ReverseAddr(ip)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseReverse(strings.ToUpper(rev))
		if !ok || got != netip.MustParseAddr(ip) {
			t.Errorf("parseReverse(%q) = %v, %v; want %s", rev, got, ok, ip)
		}
	}
	for _, name := range []string{"19.172.in-addr.arpa.", "02.0.19.172.in-addr.arpa.", "+2.0.19.172.in-addr.arpa.",
		"256.0.19.172.in-addr.arpa.", "2.0.19.172.in-addr.arpa.example.", "ip6.arpa.", "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
		"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."} {
		if got, ok := parseReverse(name); ok {
			t.Errorf("parseReverse(%q) = %v, want no address", name, got)
		}
	}
}

// FuzzParseReverse: never panics, and an address read from a name gives
// back an equal address through the standard reverse name.
func FuzzParseReverse(f *testing.F) {
	for _, s := range []string{"2.0.19.172.in-addr.arpa.", "1.0.0.127.IN-ADDR.ARPA",
		"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.0.0.0.0.a.a.d.f.ip6.arpa.", "x.ip6.arpa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ip, ok := parseReverse(name)
		if !ok {
			return
		}
		rev, err := mdns.ReverseAddr(ip.String())
		if err != nil {
			t.Fatalf("%q → %v: %v", name, ip, err)
		}
		back, ok := parseReverse(rev)
		if !ok || back != ip {
			t.Fatalf("%q → %v → %q → %v", name, ip, rev, back)
		}
	})
}
