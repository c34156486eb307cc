package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// What a Dockerfile says about the service it builds: the image its last
// stage starts from and the ports it exposes. Railway keeps no ports in
// railway.json, so these are the evidence for a TCP service (a Postgres
// or an HAProxy) that would otherwise be guessed to serve HTTP on $PORT.

// dockerfileFacts are the parts of a Dockerfile the importer reads.
type dockerfileFacts struct {
	From   string // image of the last stage ("" when none)
	Expose []int  // ports of EXPOSE lines, in order, without repeats
}

// parseDockerfile reads FROM and EXPOSE, following line continuations.
// Variables are not expanded: an EXPOSE $PORT counts no port.
func parseDockerfile(data []byte) dockerfileFacts {
	var f dockerfileFacts
	stages := map[string]string{} // stage name -> its image, for FROM stage
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var line strings.Builder
	seen := map[int]bool{}
	handle := func(l string) {
		fields := strings.Fields(l)
		if len(fields) < 2 {
			return
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			args := fields[1:]
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				args = args[1:]
			}
			if len(args) == 0 {
				return
			}
			img := args[0]
			if base, ok := stages[strings.ToLower(img)]; ok {
				img = base
			}
			if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
				stages[strings.ToLower(args[2])] = img
			}
			f.From = img
		case "EXPOSE":
			for _, p := range fields[1:] {
				p, _, _ = strings.Cut(p, "/")
				if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 && !seen[n] {
					seen[n] = true
					f.Expose = append(f.Expose, n)
				}
			}
		}
	}
	for sc.Scan() {
		t := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(t, "#") && line.Len() == 0 {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			line.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		line.WriteString(t)
		handle(line.String())
		line.Reset()
	}
	if line.Len() > 0 {
		handle(line.String())
	}
	return f
}

// tcpServers are programs and images that serve a protocol other than
// HTTP, with the port they listen on by default.
var tcpServers = map[string]struct {
	Port int
	Name string
}{
	"postgres": {5432, "PostgreSQL"}, "postgresql": {5432, "PostgreSQL"}, "patroni": {5432, "PostgreSQL (Patroni)"}, "spilo": {5432, "PostgreSQL (Spilo)"},
	"pgbouncer": {6432, "PgBouncer"}, "pgpool": {5432, "Pgpool"}, "haproxy": {5432, "HAProxy (TCP mode)"},
	"mysqld": {3306, "MySQL"}, "mysql": {3306, "MySQL"}, "mariadb": {3306, "MariaDB"}, "mongod": {27017, "MongoDB"}, "mongo": {27017, "MongoDB"},
	"redis-server": {6379, "Redis"}, "redis": {6379, "Redis"}, "valkey-server": {6379, "Valkey"}, "valkey": {6379, "Valkey"},
	"rabbitmq-server": {5672, "AMQP"}, "rabbitmq": {5672, "AMQP"}, "nats-server": {4222, "NATS"}, "mosquitto": {1883, "MQTT"},
}

// tcpGuess says whether a service built from a Dockerfile and run with
// startCommand serves raw TCP, on which port, and why; ok is false when
// nothing says so.
func tcpGuess(facts dockerfileFacts, startCommand string) (port int, why string, ok bool) {
	var exposedTCP int
	for _, p := range facts.Expose {
		if nonHTTPPorts[p] {
			exposedTCP = p
			break
		}
	}
	pick := func(def int, what string) (int, string, bool) {
		if exposedTCP != 0 {
			return exposedTCP, what + fmt.Sprintf(" and the Dockerfile exposes port %d", exposedTCP), true
		}
		if len(facts.Expose) == 1 {
			return facts.Expose[0], what + fmt.Sprintf(" and the Dockerfile exposes port %d", facts.Expose[0]), true
		}
		return def, what + fmt.Sprintf(", so port %d (its default) is a guess", def), true
	}
	if words, err := shellWords(startCommand); err == nil {
		for len(words) > 0 && (assignmentRE.MatchString(words[0]) || words[0] == "exec") {
			words = words[1:]
		}
		if len(words) > 0 {
			if s, ok := tcpServers[path.Base(words[0])]; ok && (path.Base(words[0]) != "haproxy" || exposedTCP != 0) {
				return pick(s.Port, fmt.Sprintf("the start command runs %s (%s)", path.Base(words[0]), s.Name))
			}
		}
	}
	if facts.From != "" {
		ref := strings.ToLower(facts.From)
		if i := strings.IndexByte(ref, '@'); i >= 0 {
			ref = ref[:i]
		}
		if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
			ref = ref[:i]
		}
		base := path.Base(ref)
		for _, name := range sortedKeys(tcpServers) {
			s := tcpServers[name]
			if name == "haproxy" && exposedTCP == 0 {
				continue // HAProxy serves HTTP as often as TCP
			}
			if base == name || strings.HasPrefix(base, name+"-") || strings.HasSuffix(base, "-"+name) {
				return pick(s.Port, fmt.Sprintf("the Dockerfile builds on %s (%s)", facts.From, s.Name))
			}
		}
	}
	if exposedTCP != 0 {
		return exposedTCP, fmt.Sprintf("the Dockerfile exposes port %d (%s)", exposedTCP, nonHTTPPorts.name(exposedTCP)), true
	}
	return 0, "", false
}

// haproxyBindRE finds a bind line's port: "bind *:5432", "bind :::5000 v4v6".
var haproxyBindRE = regexp.MustCompile(`(?m)^\s*bind\s+\S*:(\d{1,5})\b`)

// haproxyTCP reads an haproxy.cfg: whether it proxies in TCP mode, and the
// first port it binds.
func haproxyTCP(cfg []byte) (port int, ok bool) {
	if !regexp.MustCompile(`(?m)^\s*mode\s+tcp\b`).Match(cfg) {
		return 0, false
	}
	if m := haproxyBindRE.FindSubmatch(cfg); m != nil {
		if n, err := strconv.Atoi(string(m[1])); err == nil && n > 0 && n < 65536 {
			return n, true
		}
	}
	return 0, true
}
