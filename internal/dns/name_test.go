package dns

import (
	"os"
	"testing"
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
