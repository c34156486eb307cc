package dns

import (
	"net/netip"
	"strconv"
	"strings"
)

// Zone is the private top-level domain machines resolve each other in.
const Zone = "internal"

// kind is what a name under .internal asks for.
type kind int

const (
	kindNone      kind = iota // not a name this server knows
	kindZone                  // internal.
	kindApps                  // _apps.internal: TXT of app names
	kindInstances             // _instances.internal: TXT of every machine
	kindApp                   // <app>.internal, global.<app>.internal
	kindVMs                   // vms.<app>.internal: TXT "id region,..."
	kindRegions               // regions.<app>.internal: TXT "r1,r2"
	kindRegion                // <region>.<app>.internal
	kindVM                    // <id>.vm.<app>.internal
	kindProcess               // <group>.process.<app>.internal
	kindNearest               // top<N>.nearest.of.<app>.internal
	kindMetadata              // <value>.<key>.kv._metadata.<app>.internal
)

// maxNearest bounds N in top<N>.nearest.of: more is the same as all.
const maxNearest = 1000

// query is a parsed .internal name.
type query struct {
	kind  kind
	app   string
	arg   string // region, machine id, process group, metadata value
	key   string // metadata key
	count int    // N of top<N>
}

// parseName parses a query name (any case, with or without the final dot)
// into what it asks for. Names outside .internal, and names under it that
// match no known form, come back with kindNone; inZone tells them apart.
func parseName(name string) (q query, inZone bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if name == Zone {
		return query{kind: kindZone}, true
	}
	rest, ok := strings.CutSuffix(name, "."+Zone)
	if !ok {
		return query{}, false
	}
	// Escaped or empty labels are never names this server hands out.
	if rest == "" || strings.ContainsAny(rest, `\ `) {
		return query{}, true
	}
	l := strings.Split(rest, ".")
	for _, s := range l {
		if s == "" {
			return query{}, true
		}
	}
	switch n := len(l); {
	case n == 1 && l[0] == "_apps":
		return query{kind: kindApps}, true
	case n == 1 && l[0] == "_instances":
		return query{kind: kindInstances}, true
	case n == 1:
		return query{kind: kindApp, app: l[0]}, true
	case n == 2 && l[0] == "global":
		return query{kind: kindApp, app: l[1]}, true
	case n == 2 && l[0] == "vms":
		return query{kind: kindVMs, app: l[1]}, true
	case n == 2 && l[0] == "regions":
		return query{kind: kindRegions, app: l[1]}, true
	case n == 2:
		return query{kind: kindRegion, arg: l[0], app: l[1]}, true
	case n == 3 && l[1] == "vm":
		return query{kind: kindVM, arg: l[0], app: l[2]}, true
	case n == 3 && l[1] == "process":
		return query{kind: kindProcess, arg: l[0], app: l[2]}, true
	case n == 4 && l[1] == "nearest" && l[2] == "of":
		if c, ok := parseTop(l[0]); ok {
			return query{kind: kindNearest, count: c, app: l[3]}, true
		}
	case n == 5 && l[2] == "kv" && l[3] == "_metadata":
		return query{kind: kindMetadata, arg: l[0], key: l[1], app: l[4]}, true
	}
	return query{}, true
}

// parseTop reads "top<N>" with N a decimal without leading zeros, 1..maxNearest.
func parseTop(s string) (int, bool) {
	d, ok := strings.CutPrefix(s, "top")
	if !ok || d == "" || d[0] == '0' || len(d) > 4 {
		return 0, false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(d)
	if err != nil || n > maxNearest {
		return 0, false
	}
	return n, true
}

// name is the canonical name (with the final dot) of a parsed query.
func (q query) name() string {
	var s string
	switch q.kind {
	case kindZone:
		return Zone + "."
	case kindApps:
		s = "_apps"
	case kindInstances:
		s = "_instances"
	case kindApp:
		s = q.app
	case kindVMs:
		s = "vms." + q.app
	case kindRegions:
		s = "regions." + q.app
	case kindRegion:
		s = q.arg + "." + q.app
	case kindVM:
		s = q.arg + ".vm." + q.app
	case kindProcess:
		s = q.arg + ".process." + q.app
	case kindNearest:
		s = "top" + strconv.Itoa(q.count) + ".nearest.of." + q.app
	case kindMetadata:
		s = q.arg + "." + q.key + ".kv._metadata." + q.app
	default:
		return ""
	}
	return s + "." + Zone + "."
}

// parseReverse reads the address of a full reverse-lookup name
// (d.c.b.a.in-addr.arpa, or 32 nibbles then ip6.arpa; any case, with or
// without the final dot).
func parseReverse(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		l := strings.Split(rest, ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, s := range l {
			if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 255 || strings.ContainsAny(s, "+-") {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		l := strings.Split(rest, ".")
		if len(l) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, s := range l {
			if len(s) != 1 {
				return netip.Addr{}, false
			}
			v, err := strconv.ParseUint(s, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			// Label i is nibble 31-i, low nibble first.
			k := 31 - i
			if k%2 == 0 {
				b[k/2] |= byte(v) << 4
			} else {
				b[k/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
