package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	ctypes "github.com/compose-spec/compose-go/v2/types"
)

// A compose service's ports and healthcheck become Fly [[services]] (or
// [http_service]) ports and checks.

// composePorts picks the HTTP port and exposes the others as TCP services.
func composePorts(b *builder, s ctypes.ServiceConfig, k func(string) string, u *composeUnit) {
	type pp struct {
		target, published int
		proto             string
		local             bool
	}
	var ports []pp
	for _, p := range s.Ports {
		pub := 0
		if p.Published != "" {
			if i := strings.IndexByte(p.Published, '-'); i > 0 {
				pub, _ = strconv.Atoi(p.Published[:i])
			} else {
				pub, _ = strconv.Atoi(p.Published)
			}
		}
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		ports = append(ports, pp{int(p.Target), pub, proto, p.HostIP == "127.0.0.1" || p.HostIP == "::1"})
	}
	var expose []int
	for _, e := range s.Expose {
		n, err := strconv.Atoi(strings.Split(e, "/")[0])
		if err == nil {
			expose = append(expose, n)
		}
	}
	if len(ports) > 0 {
		u.port = ports[0].target
	} else if len(expose) > 0 {
		u.port = expose[0]
	}
	const maxPorts = 20
	if len(ports) > maxPorts {
		b.none(k("ports"), "%d ports (a port range?) published: only the first %d were converted; a machine service per port is rarely what you want", len(ports), maxPorts)
		ports = ports[:maxPorts]
	}
	if len(s.Ports) > 0 {
		for i, p := range ports {
			key := k("ports") + fmt.Sprintf("[%d]", i)
			switch {
			case p.target == 0:
				b.none(key, "port without a container port ignored")
			case u.db != "":
				b.approx(key, "", "database port %d stays private (reach it at %s.internal:%d); publishing a database to the internet is not done", p.target, b.app.Name, p.target)
			case nonHTTPPorts[p.target]:
				pub := orInt(p.published, p.target)
				b.tcpService(p.target, pub, u.procs())
				b.approx(key, "[[services]] tcp", "port %d (%s) does not speak HTTP: exposed as raw TCP on port %d; a public database port usually should stay private (%s.internal:%d)", p.target, nonHTTPPorts.name(p.target), pub, b.app.Name, p.target)
			case p.local && b.cfg().HTTPService == nil:
				b.httpService(p.target, u.procs())
				b.approx(key, "[http_service] internal_port", "port %d was published on the host's loopback only, usually behind a reverse proxy on the host: the platform's proxy now serves it on 80/443", p.target)
			case p.local:
				b.approx(key, "", "port %d was published on the host's loopback only: it stays private (%s.internal:%d)", p.target, b.app.Name, p.target)
			case p.proto == "udp":
				b.cfg().Services = append(b.cfg().Services, &FlyService{Protocol: "udp", InternalPort: p.target, Ports: []*FlyPort{{Port: orInt(p.published, p.target)}}})
				b.approx(key, "[[services]] protocol = udp", "kept in fly.toml, but Hangar's proxy does not serve UDP yet (Fly needs a dedicated IPv4 for it); reach the port over the private network at %s.internal", b.app.Name)
			case b.cfg().HTTPService == nil:
				b.httpService(p.target, u.procs())
				if p.published == 80 || p.published == 443 || p.published == 0 {
					b.mapped(key, "[http_service] internal_port")
				} else {
					b.approx(key, "[http_service] internal_port", "published port %d is served on 80/443 by the proxy (HTTPS, auto-started machines); if the port does not speak HTTP, use a [[services]] TCP entry instead", p.published)
				}
			default:
				pub := orInt(p.published, p.target)
				b.tcpService(p.target, pub, u.procs())
				b.approx(key, "[[services]] tcp", "second port exposed as raw TCP on port %d; add handlers if it speaks HTTP or TLS", pub)
			}
		}
	}
	if len(s.Expose) > 0 {
		b.approx(k("expose"), "<app>.internal", "exposed ports stay private: reach them at %s.internal:PORT", b.app.Name)
	}
}

// portNames are well-known ports that do not speak HTTP.
type portNames map[int]bool

var nonHTTPPorts = portNames{22: true, 25: true, 465: true, 587: true, 1883: true, 2181: true, 3306: true, 5432: true,
	5672: true, 6379: true, 6543: true, 9092: true, 11211: true, 27017: true, 9042: true, 7687: true, 4222: true}

func (portNames) name(p int) string {
	switch p {
	case 5432, 6543:
		return "PostgreSQL"
	case 3306:
		return "MySQL"
	case 6379:
		return "Redis"
	case 27017:
		return "MongoDB"
	case 22:
		return "SSH"
	case 25, 465, 587:
		return "SMTP"
	case 5672:
		return "AMQP"
	case 9092:
		return "Kafka"
	case 1883:
		return "MQTT"
	}
	return "not HTTP"
}

func orInt(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func composeHealth(b *builder, key string, s ctypes.ServiceConfig, env map[string]string, u *composeUnit) {
	h := s.HealthCheck
	if h.Disable || (len(h.Test) > 0 && strings.EqualFold(h.Test[0], "NONE")) {
		b.mapped(key, "(no check)")
		return
	}
	t := checkTimes{}
	if h.Interval != nil {
		t.Interval = time.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		t.Timeout = time.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		t.Grace = time.Duration(*h.StartPeriod)
	}
	if len(h.Test) == 0 {
		b.none(key, "health check without test (inherits the image's HEALTHCHECK, which is not run): add a check by hand")
		return
	}
	if u.group != "" && b.cfg().HTTPService != nil && (len(b.cfg().HTTPService.Processes) == 0 || b.cfg().HTTPService.Processes[0] != u.group) {
		// Not this group's service: a top-level check filtered to the group.
		saved := b.cfg().HTTPService
		b.cfg().HTTPService = nil
		b.execCheck(key+".test", h.Test, t, env, u.procs())
		b.cfg().HTTPService = saved
	} else {
		b.execCheck(key+".test", h.Test, t, env, u.procs())
	}
	if h.Retries != nil {
		b.none(key+".retries", "checks have no retry count: a machine is unhealthy from the first failure until a check passes")
	}
}
