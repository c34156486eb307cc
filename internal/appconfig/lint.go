package appconfig

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Lint reports settings that Fly accepts but that break real deploys. All
// findings are warnings; each says what goes wrong and what to change.
func (c *Config) Lint() []Diagnostic {
	out := slices.Clone(c.parseLint)
	for _, d := range c.parseDiags {
		if d.Rule == "wrong-section" {
			out = append(out, d)
		}
	}
	l := &linter{c: c}
	l.portMismatch()
	l.autostopVolume()
	l.unfilteredServices()
	l.killTimeout()
	l.checkHitsDatabase()
	l.volumeScale()
	l.forceHTTPS()
	out = append(out, l.out...)
	sortDiagnostics(out)
	return out
}

type linter struct {
	c   *Config
	out []Diagnostic
}

func (l *linter) warnf(rule string, p path, hint, format string, args ...any) {
	l.out = append(l.out, l.c.diag(SeverityWarning, rule, p, hint, format, args...))
}

// portMismatch: the app listens on $PORT, the proxy sends to internal_port.
func (l *linter) portMismatch() {
	c := l.c
	v, ok := c.Env["PORT"]
	if !ok {
		return
	}
	port, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return
	}
	var internal []int
	if c.HTTPService != nil && c.HTTPService.InternalPort != 0 {
		internal = append(internal, c.HTTPService.InternalPort)
	}
	for _, s := range c.Services {
		if s.InternalPort != 0 {
			internal = append(internal, s.InternalPort)
		}
	}
	if len(internal) == 0 || slices.Contains(internal, port) {
		return
	}
	l.warnf("port-mismatch", path{"env", "PORT"}, fmt.Sprintf("set PORT = \"%d\" or internal_port = %d", internal[0], port),
		"env PORT is %d but the service sends traffic to internal_port %d: an app that listens on $PORT will not get requests", port, internal[0])
}

// groupsOf lists the groups a processes filter selects.
func (c *Config) groupsOf(processes []string) []string {
	var out []string
	for _, g := range c.ProcessGroups() {
		if c.appliesTo(g, processes) {
			out = append(out, g)
		}
	}
	return out
}

func (c *Config) groupHasMount(g string) bool {
	for _, m := range c.Mounts {
		if c.appliesTo(g, m.Processes) {
			return true
		}
	}
	return false
}

type svcRef struct {
	p   path
	s   Service
	raw path // where min_machines_running / auto_stop_machines are
}

func (c *Config) serviceRefs() []svcRef {
	var out []svcRef
	if c.HTTPService != nil {
		out = append(out, svcRef{path{"http_service"}, c.HTTPService.ToService(), path{"http_service"}})
	}
	for i, s := range c.Services {
		p := path{"services"}.index(i)
		out = append(out, svcRef{p, s, p})
	}
	return out
}

// autostopVolume: with autostop and min_machines_running = 0 every machine
// of a volume-backed group may be stopped; the data is then unreachable and
// the first request waits for a cold start.
func (l *linter) autostopVolume() {
	c := l.c
	for _, r := range c.serviceRefs() {
		if !r.s.AutoStopMachines.Enabled() {
			continue
		}
		if r.s.MinMachinesRunning != nil && *r.s.MinMachinesRunning > 0 {
			continue
		}
		for _, g := range c.groupsOf(r.s.Processes) {
			if !c.groupHasMount(g) {
				continue
			}
			p := r.raw.child("min_machines_running")
			if r.s.MinMachinesRunning == nil {
				p = r.raw.child("auto_stop_machines")
			}
			l.warnf("autostop-volume", p, "set min_machines_running = 1, or auto_stop_machines = \"off\"",
				"%s stops idle machines and min_machines_running is 0, but process group %q has a volume: every machine with the data can be stopped at once", sectionName(r.p), g)
			break
		}
	}
}

// unfilteredServices: with [processes], a service without a processes
// filter is attached only to the default group, which is rarely what was
// meant (and a worker group left out gets no traffic, or a worker listed
// first gets the web traffic).
func (l *linter) unfilteredServices() {
	c := l.c
	if len(c.Processes) == 0 {
		return
	}
	groups := c.ProcessGroups()
	for _, r := range c.serviceRefs() {
		if len(r.s.Processes) > 0 {
			continue
		}
		def := c.DefaultProcessGroup()
		l.warnf("unfiltered-service", r.p, fmt.Sprintf("add processes = [%q] to %s", def, sectionName(r.p)),
			"[processes] defines %s but %s has no processes filter: Fly attaches it to %q only, and flyctl refuses it when deploying", strings.Join(groups, ", "), sectionName(r.p), def)
	}
}

func (l *linter) killTimeout() {
	kt := l.c.KillTimeout
	if kt == nil {
		return
	}
	switch {
	case kt.Duration == 0:
		l.warnf("kill-timeout", path{"kill_timeout"}, "use a few seconds, e.g. kill_timeout = \"5s\"", "kill_timeout is 0: the machine is killed without time to finish requests or flush data")
	case kt.Duration > 300*time.Second:
		l.warnf("kill-timeout", path{"kill_timeout"}, "use at most \"300s\"", "kill_timeout %s is over Fly's maximum of 300s; it will be cut to 300s", kt.Duration)
	}
}

var dbPath = regexp.MustCompile(`(?i)(^|[^a-z])(db|database|databases|postgres|postgresql|pg|mysql|redis|sql)([^a-z]|$)`)

// checkHitsDatabase: a health check that touches the database makes a
// database hiccup restart or unroute every machine at once.
func (l *linter) checkHitsDatabase() {
	c := l.c
	one := func(p path, hp *string) {
		if hp == nil || !dbPath.MatchString(*hp) {
			return
		}
		l.warnf("check-db", p.child("path"), "check only that the app serves requests; report database health elsewhere",
			"health check path %q looks like it queries the database: when the database is slow every machine fails its check at once", *hp)
	}
	if c.HTTPService != nil {
		for i, chk := range c.HTTPService.HTTPChecks {
			if chk != nil {
				one(path{"http_service", "checks"}.index(i), chk.Path)
			}
		}
	}
	for i, s := range c.Services {
		for j, chk := range s.HTTPChecks {
			if chk != nil {
				one(path{"services"}.index(i).child("http_checks").index(j), chk.Path)
			}
		}
	}
	for _, name := range sortedMapKeys(c.Checks) {
		if chk := c.Checks[name]; chk != nil {
			one(path{"checks", name}, chk.Path)
		}
	}
}

// volumeScale: a volume belongs to one machine; a group that expects more
// than one machine per region needs one volume per machine, and their data
// is not shared.
func (l *linter) volumeScale() {
	c := l.c
	for _, r := range c.serviceRefs() {
		if r.s.MinMachinesRunning == nil || *r.s.MinMachinesRunning <= 1 {
			continue
		}
		for _, g := range c.groupsOf(r.s.Processes) {
			if !c.groupHasMount(g) {
				continue
			}
			l.warnf("volume-scale", r.raw.child("min_machines_running"), fmt.Sprintf("create %d volumes per region, and keep shared state in a database", *r.s.MinMachinesRunning),
				"process group %q has a volume and expects %d machines running: each machine needs its own volume, and they do not share data", g, *r.s.MinMachinesRunning)
			break
		}
	}
}

// forceHTTPS: force_https only works on a port with the http handler.
func (l *linter) forceHTTPS() {
	for i, s := range l.c.Services {
		for j, port := range s.Ports {
			if port.ForceHTTPS && !slices.Contains(port.Handlers, "http") {
				l.warnf("force-https", path{"services"}.index(i).child("ports").index(j).child("force_https"), "add handlers = [\"http\"] or remove force_https",
					"force_https has no effect on a port without the http handler (handlers: %s)", handlerList(port))
			}
		}
	}
}

func handlerList(p types.MachinePort) string {
	if len(p.Handlers) == 0 {
		return "none"
	}
	return strings.Join(p.Handlers, ", ")
}
