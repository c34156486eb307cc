package appconfig

import (
	"fmt"
	"reflect"
	"strings"
)

// obsolete lists keys that real fly.toml files still carry from Fly's
// Nomad-based (v1) platform or from older flyctl releases. Fly ignores
// them; so does Hangar, with a specific warning.
var obsolete = map[string]string{
	"script_checks":                     "script checks ran on Fly's v1 (Nomad) platform; machines ignore them",
	"experimental.private_network":      "every app is on its private network; this v1 setting does nothing",
	"experimental.allowed_public_ports": "a v1 setting; public ports come from [[services.ports]]",
	"processes_memory":                  "a v1 setting; use [[vm]] with processes = [...]",
	"org":                               "the organization is chosen when the app is created, not in fly.toml",
	"deploy.canary":                     "use strategy = \"canary\"",
}

// misplaced are keys that belong to a sibling section, with where they go.
var misplaced = map[string]string{
	"http_service.http_checks":     "write the checks as [[http_service.checks]]",
	"http_service.tcp_checks":      "[http_service] takes http checks ([[http_service.checks]]); for a tcp check use [checks.NAME] with type = \"tcp\"",
	"http_service.ports":           "[http_service] always listens on ports 80 and 443; use [[services]] for other ports",
	"http_service.protocol":        "[http_service] is always tcp; remove protocol",
	"http_service.handlers":        "[http_service] always uses the http (and tls) handlers; use [[services]] to choose handlers",
	"services.checks":              "write [[services.http_checks]] or [[services.tcp_checks]]",
	"services.port":                "move port into a [[services.ports]] section",
	"services.handlers":            "move handlers into a [[services.ports]] section",
	"services.force_https":         "move force_https into a [[services.ports]] section",
	"services.ports.internal_port": "move internal_port above the [[services.ports]] header, into [[services]]",
}

// sectionName renders a table path the way it is written in fly.toml:
// [[services.ports]], [http_service], the top level.
func sectionName(p path) string {
	if len(p) == 0 {
		return "the top level"
	}
	var parts []string
	array := false
	for _, s := range p {
		if isIndex(s) {
			array = true
			continue
		}
		parts = append(parts, s)
		array = false
	}
	name := strings.Join(parts, ".")
	if array {
		return "[[" + name + "]]"
	}
	return "[" + name + "]"
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// genericPath drops array indexes: services.0.ports.1 -> services.ports.
func genericPath(p path) string {
	var parts []string
	for _, s := range p {
		if !isIndex(s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ".")
}

// unknownKey reports a key that no section of fly.toml defines. If the
// key is a setting of an enclosing section, the likely mistake is a line
// written below the wrong [header], and the warning says where it belongs.
func (d *decoder) unknownKey(pth path, k string, v any) {
	generic := genericPath(pth)
	if msg, ok := obsolete[generic]; ok || obsolete[k] != "" {
		if msg == "" {
			msg = obsolete[k]
		}
		if msg == "" {
			msg = "not used by Fly machines"
		}
		d.p.warnf(pth, "obsolete-key", "remove it; Fly ignores it too", "%s: obsolete key (%s)", pth, msg)
		return
	}
	here := sectionName(pth[:len(pth)-1])
	if hint, ok := misplaced[generic]; ok {
		d.p.warnf(pth, "wrong-section", hint, "%s is not a setting of %s", k, here)
		return
	}
	// Look up the enclosing sections, nearest first.
	for i := len(d.stack) - 2; i >= 0; i-- {
		f := d.stack[i]
		if _, ok := fieldsOf(f.t)[k]; ok {
			where := sectionName(f.pth)
			hint := fmt.Sprintf("move %q above the %s header, into %s", k, here, where)
			if len(f.pth) == 0 {
				hint = fmt.Sprintf("move %q to the top of the file, above the first [section]", k)
			}
			d.p.warnf(pth, "wrong-section", hint, "%s is not a setting of %s; it belongs to %s", k, here, where)
			return
		}
	}
	if sug := suggestKey(k, d.stack[len(d.stack)-1].t); sug != "" {
		d.p.warnf(pth, "unknown-key", fmt.Sprintf("did you mean %q?", sug), "unknown key %s in %s", k, here)
		return
	}
	_ = v
	d.p.warnf(pth, "unknown-key", "check the spelling; Fly ignores keys it does not know", "unknown key %s in %s", k, here)
}

// suggestKey finds a known key of t close to k (a typo or a dash/underscore
// mix-up).
func suggestKey(k string, t reflect.Type) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	best, bestDist := "", 3
	for name := range fieldsOf(t) {
		if norm(name) == norm(k) {
			return name
		}
		if dist := levenshtein(norm(name), norm(k)); dist < bestDist || dist == bestDist && name < best {
			best, bestDist = name, dist
		}
	}
	if bestDist > 2 || len(k) < 4 {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
