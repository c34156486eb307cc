package appconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// SeverityNote marks a diagnostic that only says how an old or variant
// form was read; nothing needs fixing.
const SeverityNote = "note"

func (p *parser) notef(pth path, rule, hint, format string, args ...any) {
	p.diag(SeverityNote, rule, pth, hint, format, args...)
}

// normalize rewrites, in place, the old and variant forms that flyctl
// accepts into the one form the typed decoder reads, with a note for each.
// The rewrites follow flyctl's patches: the meaning is flyctl's.
func (p *parser) normalize(doc map[string]any) {
	p.normEnv(doc)
	p.normProcesses(doc)
	p.normServices(doc)
	p.normHTTPService(doc)
	p.normExperimental(doc)
	p.normChecks(doc)
	p.normArray(doc, "vm", []string{"compute", "computes", "vm"})
	p.normArray(doc, "mounts", []string{"mount", "mounts"})
	p.normArray(doc, "metrics", []string{"metric", "metrics"})
	p.normBuild(doc)
	p.normTop(doc)
}

func (p *parser) normEnv(doc map[string]any) {
	raw, ok := doc["env"]
	if !ok {
		return
	}
	if list, ok := raw.([]any); ok {
		env := map[string]any{}
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				p.errorf(path{"env"}.index(i), "type", "write [env] as a table of NAME = \"value\" lines", "env[%d]: expected a table, found %s", i, typeName(item))
				continue
			}
			for k, v := range m {
				env[k] = v
				p.ix.alias(path{"env", k}, path{"env"}.index(i).child(k))
			}
		}
		doc["env"] = env
		p.notef(path{"env"}, "env-list", "write [env] as a table: NAME = \"value\"", "env written as a list of tables; merged into one table")
	}
}

func (p *parser) normProcesses(doc map[string]any) {
	raw, ok := doc["processes"]
	if !ok {
		return
	}
	list, ok := raw.([]any)
	if !ok {
		return
	}
	if len(list) == 0 {
		// v1 files carry an empty top-level processes = [].
		delete(doc, "processes")
		p.notef(path{"processes"}, "processes-list", "remove the line", "processes = [] is empty; ignored")
		return
	}
	procs := map[string]any{}
	for i, item := range list {
		ip := path{"processes"}.index(i)
		m, ok := item.(map[string]any)
		if !ok {
			p.errorf(ip, "type", "write [processes] as a table: name = \"command\"", "processes[%d]: expected a table with name and command, found %s", i, typeName(item))
			continue
		}
		name, ok := m["name"]
		if !ok {
			p.warnf(ip, "processes-list", "give each entry a name and a command", "processes[%d] has no name; ignored", i)
			continue
		}
		n, _ := scalarString(name)
		cmd := ""
		if c, ok := m["command"]; ok {
			cmd, _ = scalarString(c)
		} else if _, ok := m["cmd"]; ok {
			// flyctl reads only "command": the group runs the image's CMD.
			p.warnf(ip.child("cmd"), "processes-list", fmt.Sprintf("write [processes] as a table: %s = \"...\"", n),
				"processes[%d] uses cmd, which flyctl does not read: group %q runs the image's default command", i, n)
		}
		for _, k := range sortedKeys(m) {
			if k != "name" && k != "command" && k != "cmd" {
				p.warnf(ip.child(k), "unknown-key", "only name and command are read here", "unknown key %s in [[processes]]", k)
			}
		}
		procs[n] = cmd
		p.ix.alias(path{"processes", n}, ip)
	}
	if len(procs) == 0 {
		delete(doc, "processes")
	} else {
		doc["processes"] = procs
	}
	p.notef(path{"processes"}, "processes-list", "write [processes] as a table: name = \"command\"", "processes written as a list of {name, command}; read as a table")
}

// asTables turns a single table into a one-element list (flyctl's
// ensureArrayOfMap) and reports whether raw had a usable shape.
func (p *parser) asTables(pth path, raw any) ([]any, bool) {
	switch x := raw.(type) {
	case []any:
		return x, true
	case map[string]any:
		p.ix.alias(pth.index(0), pth)
		return []any{x}, true
	default:
		return nil, false
	}
}

func (p *parser) normServices(doc map[string]any) {
	raw, ok := doc["services"]
	if !ok {
		return
	}
	list, ok := p.asTables(path{"services"}, raw)
	if !ok {
		return
	}
	if _, single := raw.(map[string]any); single {
		sp, pp := p.ix.lookup(path{"services"}), p.ix.lookup(path{"services", "ports"})
		if _, hasPorts := raw.(map[string]any)["ports"]; hasPorts && sp == pp {
			// [[services.ports]] with no [[services]] header above it.
			p.warnf(path{"services", "ports"}, "wrong-section", "add a [[services]] header (with internal_port and protocol) above [[services.ports]]",
				"[[services.ports]] has no [[services]] header above it; read as a service of its own")
		} else {
			p.notef(path{"services"}, "single-table", "write [[services]] with double brackets", "[services] written as a single table; read as a list of one service")
		}
	}
	var out []any
	for i, item := range list {
		svc, ok := item.(map[string]any)
		if !ok {
			out = append(out, item)
			continue
		}
		if len(svc) == 0 {
			// flyctl drops empty [[services]] sections.
			p.notef(path{"services"}.index(i), "empty-service", "remove the empty [[services]] header", "empty [[services]] section ignored")
			continue
		}
		pth := path{"services"}.index(len(out))
		if len(out) != i {
			p.reindex(path{"services"}.index(i), pth, svc)
		}
		p.normService(pth, svc)
		out = append(out, svc)
	}
	if out == nil {
		out = []any{}
	}
	doc["services"] = out
}

// reindex copies positions of a moved subtree to its new path.
func (p *parser) reindex(from, to path, v any) {
	p.ix.alias(to, from)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p.reindex(from.child(k), to.child(k), e)
		}
	case []any:
		for i, e := range x {
			p.reindex(from.index(i), to.index(i), e)
		}
	}
}

func (p *parser) normConcurrency(pth path, svc map[string]any) {
	s, ok := svc["concurrency"].(string)
	if !ok {
		return
	}
	cp := pth.child("concurrency")
	left, right, found := strings.Cut(s, ",")
	soft, err1 := strconv.Atoi(strings.TrimSpace(left))
	hard, err2 := strconv.Atoi(strings.TrimSpace(right))
	if !found || err1 != nil || err2 != nil {
		p.errorf(cp, "concurrency", "write concurrency = \"soft,hard\" or a [services.concurrency] table with soft_limit and hard_limit", "%s: cannot read %q as \"soft_limit,hard_limit\"", cp, s)
		delete(svc, "concurrency")
		return
	}
	svc["concurrency"] = map[string]any{"type": "requests", "soft_limit": int64(soft), "hard_limit": int64(hard)}
	p.notef(cp, "concurrency-string", "write a [services.concurrency] table with type, soft_limit and hard_limit", "concurrency %q read as type = \"requests\", soft_limit = %d, hard_limit = %d", s, soft, hard)
}

func (p *parser) normService(pth path, svc map[string]any) {
	p.normConcurrency(pth, svc)
	if raw, ok := svc["ports"]; ok {
		if _, single := raw.(map[string]any); single {
			p.notef(pth.child("ports"), "single-table", "write [[services.ports]] with double brackets", "ports written as a single table; read as a list of one port")
		}
		if list, ok := p.asTables(pth.child("ports"), raw); ok {
			svc["ports"] = list
		}
	}
	for _, kind := range []string{"tcp_checks", "http_checks"} {
		raw, ok := svc[kind]
		if !ok {
			continue
		}
		list, ok := p.asTables(pth.child(kind), raw)
		if !ok {
			continue
		}
		if len(list) == 0 {
			delete(svc, kind)
			continue
		}
		for i, c := range list {
			if m, ok := c.(map[string]any); ok {
				p.normCheckHeaders(pth.child(kind).index(i), m)
			}
		}
		svc[kind] = list
	}
}

func (p *parser) normHTTPService(doc map[string]any) {
	hs, ok := doc["http_service"].(map[string]any)
	if !ok {
		return
	}
	p.normConcurrency(path{"http_service"}, hs)
	if raw, ok := hs["checks"]; ok {
		if list, ok := p.asTables(path{"http_service", "checks"}, raw); ok {
			for i, c := range list {
				if m, ok := c.(map[string]any); ok {
					p.normCheckHeaders(path{"http_service", "checks"}.index(i), m)
				}
			}
			hs["checks"] = list
		}
	}
}

// normCheckHeaders reads headers written as [{name, value}] into a table.
func (p *parser) normCheckHeaders(pth path, check map[string]any) {
	raw, ok := check["headers"]
	if !ok {
		return
	}
	list, ok := raw.([]any)
	if !ok {
		return
	}
	headers := map[string]any{}
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			p.errorf(pth.child("headers").index(i), "type", "write headers as a table: Name = \"value\"", "%s: expected {name, value}, found %s", pth.child("headers").index(i), typeName(item))
			continue
		}
		name, ok := m["name"]
		if !ok {
			p.errorf(pth.child("headers").index(i), "type", "write headers as a table: Name = \"value\"", "%s: header has no name", pth.child("headers").index(i))
			continue
		}
		n, _ := scalarString(name)
		v, _ := scalarString(m["value"])
		headers[n] = v
	}
	check["headers"] = headers
	p.notef(pth.child("headers"), "headers-list", "write headers as a table: Name = \"value\"", "headers written as a list of {name, value}; read as a table")
}

func (p *parser) normExperimental(doc map[string]any) {
	exp, ok := doc["experimental"].(map[string]any)
	if !ok {
		return
	}
	for _, k := range []string{"cmd", "entrypoint", "exec"} {
		if s, ok := exp[k].(string); ok {
			// flyctl keeps a string as one argument; it does not split it.
			exp[k] = []any{s}
			p.notef(path{"experimental", k}, "experimental-string", fmt.Sprintf("write %s = [%q]", k, s), "experimental.%s is a string; read as a one-element list", k)
		}
	}
	if v, ok := exp["kill_timeout"]; ok {
		delete(exp, "kill_timeout")
		if _, top := doc["kill_timeout"]; !top {
			doc["kill_timeout"] = v
			p.ix.alias(path{"kill_timeout"}, path{"experimental", "kill_timeout"})
			p.notef(path{"experimental", "kill_timeout"}, "experimental-moved", "move kill_timeout to the top level", "experimental.kill_timeout read as the top-level kill_timeout")
		} else {
			p.warnf(path{"experimental", "kill_timeout"}, "experimental-moved", "remove experimental.kill_timeout", "experimental.kill_timeout ignored: the top-level kill_timeout is set")
		}
	}
	metrics := map[string]any{}
	for _, k := range []string{"metrics_port", "metrics_path"} {
		if v, ok := exp[k]; ok {
			delete(exp, k)
			metrics[strings.TrimPrefix(k, "metrics_")] = v
			p.ix.alias(path{"metrics", "0", strings.TrimPrefix(k, "metrics_")}, path{"experimental", k})
		}
	}
	if len(metrics) > 0 {
		if _, ok := doc["metrics"]; !ok {
			doc["metrics"] = []any{metrics}
			p.ix.alias(path{"metrics"}, path{"experimental", "metrics_port"})
			p.ix.alias(path{"metrics"}, path{"experimental", "metrics_path"})
			p.notef(path{"metrics"}, "experimental-moved", "write a [[metrics]] section with port and path", "experimental.metrics_port/metrics_path read as [[metrics]]")
		}
	}
	if len(exp) == 0 {
		delete(doc, "experimental")
	}
}

func (p *parser) normChecks(doc map[string]any) {
	raw, ok := doc["checks"]
	if !ok {
		return
	}
	switch x := raw.(type) {
	case map[string]any:
		for _, name := range sortedKeys(x) {
			if m, ok := x[name].(map[string]any); ok {
				if typ, _ := m["type"].(string); typ == "script" {
					// Script checks ran on Fly's v1 (Nomad) platform;
					// machines cannot run them.
					p.warnf(path{"checks", name, "type"}, "obsolete-key", "remove the check, or make it an http or tcp check",
						"check %q is a script check: script checks ran on Fly's v1 platform and are ignored on machines", name)
					delete(x, name)
					continue
				}
				p.normCheckHeaders(path{"checks", name}, m)
			}
		}
	case []any:
		checks := map[string]any{}
		for i, item := range x {
			m, ok := item.(map[string]any)
			if !ok {
				p.errorf(path{"checks"}.index(i), "type", "write each check as [checks.NAME]", "checks[%d]: expected a table, found %s", i, typeName(item))
				continue
			}
			name, ok := m["name"].(string)
			if !ok {
				p.errorf(path{"checks"}.index(i), "type", "write each check as [checks.NAME]", "checks[%d] has no name", i)
				continue
			}
			delete(m, "name")
			p.reindex(path{"checks"}.index(i), path{"checks", name}, m)
			p.normCheckHeaders(path{"checks", name}, m)
			checks[name] = m
		}
		doc["checks"] = checks
		p.notef(path{"checks"}, "checks-list", "write each check as [checks.NAME]", "checks written as a list; read as named checks")
	}
}

// normArray merges the spellings of a list section into one list under
// key: a single [vm] table or [[compute]] are read as [[vm]].
func (p *parser) normArray(doc map[string]any, key string, spellings []string) {
	var merged []any
	found := false
	for _, k := range spellings {
		raw, ok := doc[k]
		if !ok {
			continue
		}
		found = true
		list, ok := p.asTables(path{k}, raw)
		if !ok {
			// Leave it for the decoder to report the wrong type.
			continue
		}
		delete(doc, k)
		for i, item := range list {
			p.reindex(path{k}.index(i), path{key}.index(len(merged)), item)
			merged = append(merged, item)
		}
		switch {
		case k == "mount":
			p.lint = append(p.lint, p.mk(SeverityWarning, "singular-mount", path{k}, "rename the section to [[mounts]]",
				"[mount] is not a fly.toml section: flyctl reads it as [[mounts]], but Fly's documentation and other tools ignore it, so the volume may silently not be mounted"))
		case k != key:
			p.notef(path{k}, "alias", fmt.Sprintf("write [[%s]]", key), "[%s] read as [[%s]]", k, key)
		default:
			if _, single := raw.(map[string]any); single {
				p.notef(path{k}, "single-table", fmt.Sprintf("write [[%s]] with double brackets", key), "[%s] written as a single table; read as a list of one", key)
			}
		}
	}
	if found && merged != nil {
		doc[key] = merged
	}
}

func (p *parser) normBuild(doc map[string]any) {
	b, ok := doc["build"].(map[string]any)
	if !ok {
		return
	}
	for _, old := range []string{"build_target", "docker_build_target"} {
		if v, ok := b[old]; ok {
			delete(b, old)
			if _, set := b["build-target"]; !set {
				b["build-target"] = v
				p.ix.alias(path{"build", "build-target"}, path{"build", old})
				p.notef(path{"build", old}, "alias", "write build-target", "build.%s read as build.build-target", old)
			}
		}
	}
}

func (p *parser) normTop(doc map[string]any) {
	if v, ok := doc["kill_timeout"]; ok {
		switch v.(type) {
		case int64, float64:
			p.notef(path{"kill_timeout"}, "integer-duration", fmt.Sprintf("write kill_timeout = \"%vs\"", v), "kill_timeout = %v read as %v seconds", v, v)
		}
	}
}
