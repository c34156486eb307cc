package importer

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// builder accumulates one app's fly.toml, secrets and report entries.
type builder struct {
	app     *App
	rep     *Report
	opts    Options
	secrets map[string]int // name -> index in app.Secrets
	// actions are this app's next steps, added to the report in order.
	actions []string
	// scale collects per-process machine counts for one command.
	counts map[string]int
	// self lists the names the source used for this unit itself (a
	// compose service name): a health check probing them probes itself.
	self []string
	// alwaysOn says that the source ran its instances all the time (no
	// scale to zero); alwaysOnWhy says so in the report.
	alwaysOn    bool
	alwaysOnWhy string
	// persist says why a Redis/Valkey app keeps its data on disk ("" for
	// a cache that may start empty).
	persist string
	// cronOnly says that the app runs as scheduled machines only: it has
	// no deploy step.
	cronOnly bool
}

// deployMarker stands for an app's deploy command in the report's next
// steps until the layout (where its config is written) is known.
func deployMarker(app string) string { return "hangar deploy -c {config of " + app + "}" }

func newBuilder(rep *Report, opts Options, name, from string) *builder {
	cfg := &FlyConfig{App: name}
	if opts.Region != "" {
		cfg.PrimaryRegion = opts.Region
	}
	return &builder{
		app:     &App{Name: name, From: from, Config: cfg},
		rep:     rep,
		opts:    opts,
		secrets: map[string]int{},
		counts:  map[string]int{},
	}
}

func (b *builder) cfg() *FlyConfig { return b.app.Config }

func (b *builder) add(key string, st Status, target, warn string) {
	b.rep.Entries = append(b.rep.Entries, Entry{App: b.app.Name, Key: key, Status: st, Target: target, Warning: warn})
}

func (b *builder) mapped(key, target string) { b.add(key, Mapped, target, "") }
func (b *builder) approx(key, target, format string, args ...any) {
	b.add(key, Approximated, target, fmt.Sprintf(format, args...))
}
func (b *builder) none(key, format string, args ...any) {
	b.add(key, Unsupported, "", fmt.Sprintf(format, args...))
}
func (b *builder) action(format string, args ...any) {
	b.actions = append(b.actions, fmt.Sprintf(format, args...))
}

// flush finishes the config and moves the app's actions into the report.
func (b *builder) flush() *App {
	c := b.cfg()
	// With one process group, say so on every service: flyctl refuses
	// unfiltered services once [processes] exists.
	if len(c.Processes) == 1 {
		group := sortedKeys(c.Processes)[0]
		if c.HTTPService != nil && len(c.HTTPService.Processes) == 0 {
			c.HTTPService.Processes = []string{group}
		}
		for _, s := range c.Services {
			if len(s.Processes) == 0 {
				s.Processes = []string{group}
			}
		}
	}
	b.templates()
	b.lifecycle()
	// A stopped machine takes its volume's data offline.
	if len(c.Mounts) > 0 && c.HTTPService != nil && (c.HTTPService.MinMachinesRunning == nil || *c.HTTPService.MinMachinesRunning == 0) {
		c.HTTPService.MinMachinesRunning = intPtr(1)
		b.approx("(volume)", "[http_service] min_machines_running = 1", "the app keeps data on a volume, so one machine stays running; autostop still stops the others")
	}
	if len(b.counts) > 0 {
		if len(b.counts) == 1 && b.counts["app"] > 0 && len(b.cfg().Processes) == 0 {
			b.action("hangar scale count %d -a %s", b.counts["app"], b.app.Name)
		} else {
			var parts []string
			for _, p := range sortedKeys(b.counts) {
				parts = append(parts, fmt.Sprintf("%s=%d", p, b.counts[p]))
			}
			b.action("hangar scale count %s -a %s", strings.Join(parts, " "), b.app.Name)
		}
	}
	if len(b.app.Secrets) > 0 {
		b.action("hangar secrets import -a %s < %s", b.app.Name, secretsPath(b.app.Name))
	}
	// In the order they can run on a first deploy: the app must exist
	// before its volumes and secrets, and have machines before a scale.
	var pre, post []string
	for _, a := range b.actions {
		if strings.HasPrefix(a, "hangar volumes create ") || strings.HasPrefix(a, "hangar secrets import ") {
			pre = append(pre, a)
		} else {
			post = append(post, a)
		}
	}
	if len(pre) > 0 {
		b.rep.Actions = append(b.rep.Actions, "hangar apps create "+b.app.Name)
	}
	b.rep.Actions = append(b.rep.Actions, pre...)
	if !b.cronOnly {
		b.rep.Actions = append(b.rep.Actions, deployMarker(b.app.Name))
	}
	b.rep.Actions = append(b.rep.Actions, post...)
	return b.app
}

// templates warns about {{placeholder}} values that a deploy tool was
// meant to fill in: they reach the machine as literal text.
func (b *builder) templates() {
	c := b.cfg()
	check := func(key, v string) {
		if ph := templatePlaceholders(v); len(ph) > 0 {
			b.approx(key, key, "holds the template placeholder(s) %s, which the source's deploy tooling filled in: they are kept literally; replace them before deploying", strings.Join(ph, ", "))
		}
	}
	for _, g := range sortedKeys(c.Processes) {
		check("[processes] "+g, c.Processes[g])
	}
	if c.Deploy != nil {
		check("[deploy] release_command", c.Deploy.ReleaseCommand)
	}
	if c.Build != nil {
		check("[build] image", c.Build.Image)
	}
	if c.Experimental != nil {
		check("[experimental] entrypoint", strings.Join(c.Experimental.Entrypoint, " "))
	}
	for _, n := range sortedKeys(c.Env) {
		check("[env] "+n, c.Env[n])
	}
}

// lifecycle keeps machines running where the source kept its instances
// running: a fixed count on a platform without scale to zero becomes
// min_machines_running, so autostop does not stop what used to run all
// the time.
func (b *builder) lifecycle() {
	c := b.cfg()
	if !b.alwaysOn || c.HTTPService == nil {
		return
	}
	group := firstOr(c.HTTPService.Processes, "app")
	n, ok := b.counts[group]
	if !ok {
		n = 1
	}
	if n < 1 || (c.HTTPService.MinMachinesRunning != nil && *c.HTTPService.MinMachinesRunning >= n) {
		return
	}
	c.HTTPService.MinMachinesRunning = intPtr(n)
	b.approx("(lifecycle)", fmt.Sprintf("[http_service] min_machines_running = %d", n), "%s", b.alwaysOnWhy)
}

// secretsPath is where WriteDir puts an app's secrets file; actions name it.
func secretsPath(app string) string { return app + ".secrets.env" }

var secretNameRE = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY|_KEY$|^KEY$|_KEY_|SALT|DSN$|BASIC_AUTH|AUTH_KEY|SIGNING)`)

// connectionNameRE names variables that hold a connection string, which
// carries credentials once filled in (MONGODB_URI, DATABASE_URL).
var connectionNameRE = regexp.MustCompile(`(?i)(_URI$|_DSN$|CONNECTION_?STRING$|^(DATABASE|DB|[A-Z]+_DB|POSTGRES(QL)?|PG|MYSQL|MARIADB|MONGO(DB)?|REDIS|VALKEY|KV|AMQP|RABBITMQ|CLOUDAMQP|ELASTICSEARCH|OPENSEARCH|MEMCACHED?|SENTRY)_URL$)`)

// looksSecret says whether an env var holds a secret, by name or by a
// password inside a URL value.
func looksSecret(name, value string) bool {
	if strings.HasSuffix(strings.ToUpper(name), "_FILE") && strings.HasPrefix(value, "/") {
		return false // the path of a file that holds the secret
	}
	if secretNameRE.MatchString(name) {
		return true
	}
	if value == "" && connectionNameRE.MatchString(name) {
		return true // a connection string left empty to be set per deployment
	}
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return false
}

// env sets one variable: plain values go to [env], secrets to the secrets
// file (value only when asked for).
func (b *builder) env(key, name, value string) {
	if looksSecret(name, value) {
		b.secret(key, name, value, "")
		return
	}
	if b.cfg().Env == nil {
		b.cfg().Env = map[string]string{}
	}
	b.cfg().Env[name] = value
	b.mapped(key, "[env] "+name)
}

// secret records a secret. value is what the source file says (written
// only with IncludeSecretValues); why explains where it came from.
func (b *builder) secret(key, name, value, why string) {
	v := ""
	if b.opts.IncludeSecretValues {
		v = value
	}
	if i, ok := b.secrets[name]; ok {
		if v != "" {
			b.app.Secrets[i].Value = v
		}
	} else {
		b.secrets[name] = len(b.app.Secrets)
		b.app.Secrets = append(b.app.Secrets, Secret{Name: name, Value: v})
	}
	if b.cfg().Env != nil {
		delete(b.cfg().Env, name)
	}
	msg := "secret: name written to " + secretsPath(b.app.Name)
	if value != "" && !b.opts.IncludeSecretValues {
		msg += " with an empty value (rerun with --include-secret-values to copy the value from the source file)"
	} else if value == "" {
		msg += " with an empty value: fill it in before importing"
	}
	if why != "" {
		msg = why + "; " + msg
	}
	b.approx(key, "hangar secrets "+name, "%s", msg)
}

// process adds a process group command.
func (b *builder) process(group, cmd string) {
	if b.cfg().Processes == nil {
		b.cfg().Processes = map[string]string{}
	}
	b.cfg().Processes[group] = cmd
}

// httpService exposes port through [http_service].
func (b *builder) httpService(port int, processes []string) *FlyHTTPService {
	c := b.cfg()
	if c.HTTPService == nil {
		c.HTTPService = &FlyHTTPService{
			InternalPort:       port,
			ForceHTTPS:         true,
			AutoStopMachines:   "stop",
			AutoStartMachines:  boolPtr(true),
			MinMachinesRunning: intPtr(0),
			Processes:          processes,
		}
	}
	return c.HTTPService
}

// tcpService exposes a raw TCP port publicly.
func (b *builder) tcpService(internal, public int, processes []string) {
	b.cfg().Services = append(b.cfg().Services, &FlyService{
		Protocol:     "tcp",
		InternalPort: internal,
		Processes:    processes,
		Ports:        []*FlyPort{{Port: public}},
	})
}

// probe is an HTTP health probe the importer understood.
type probe struct {
	Port   int
	Path   string
	Scheme string
	Method string
}

// checkTimes are a check's timings; zero values are left out.
type checkTimes struct {
	Interval, Timeout, Grace time.Duration
}

func dur(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

// httpCheck attaches an HTTP check: to [http_service] when the port matches,
// else as a top-level [checks] entry.
func (b *builder) httpCheck(key string, p probe, t checkTimes, processes []string) {
	c := b.cfg()
	capped := t.Grace > time.Minute
	if capped {
		t.Grace = time.Minute
		defer func() {
			last := &b.rep.Entries[len(b.rep.Entries)-1]
			last.Status = Approximated
			last.Warning = strings.TrimPrefix(last.Warning+"; grace period capped at 1m, the longest a check may wait", "; ")
		}()
	}
	chk := &FlyHTTPCheck{GracePeriod: dur(t.Grace), Interval: dur(t.Interval), Timeout: dur(t.Timeout), Method: p.Method, Path: p.Path}
	if p.Scheme == "https" {
		chk.Protocol = "https"
	}
	if c.HTTPService != nil && (p.Port == 0 || p.Port == c.HTTPService.InternalPort) {
		c.HTTPService.Checks = append(c.HTTPService.Checks, chk)
		b.mapped(key, "[[http_service.checks]]")
		return
	}
	if p.Port == 0 {
		b.none(key, "the health check names no port and the app serves no HTTP port: add a check by hand")
		return
	}
	if c.Checks == nil {
		c.Checks = map[string]*FlyCheck{}
	}
	name := fmt.Sprintf("health_%d", p.Port)
	c.Checks[name] = &FlyCheck{Type: "http", Port: p.Port, GracePeriod: chk.GracePeriod, Interval: chk.Interval, Timeout: chk.Timeout, Method: p.Method, Path: p.Path, Processes: processes}
	b.mapped(key, "[checks."+name+"]")
}

// tcpCheck adds a top-level TCP check on port.
func (b *builder) tcpCheck(key string, port int, t checkTimes, processes []string, why string) {
	c := b.cfg()
	if c.Checks == nil {
		c.Checks = map[string]*FlyCheck{}
	}
	name := fmt.Sprintf("tcp_%d", port)
	c.Checks[name] = &FlyCheck{Type: "tcp", Port: port, GracePeriod: dur(t.Grace), Interval: dur(t.Interval), Timeout: dur(t.Timeout), Processes: processes}
	b.approx(key, "[checks."+name+"]", "%s", why)
}

// execCheck converts an exec-style health check (a command run inside the
// container) into an HTTP check when it is a plain curl/wget of a local URL.
func (b *builder) execCheck(key string, cmd []string, t checkTimes, env map[string]string, processes []string) {
	p, how, err := parseExecCheck(cmd, env, b.self...)
	switch {
	case err != nil:
		b.none(key, "exec health check %q cannot run on the platform's proxy (%v): add an http or tcp check by hand, or use [[http_service.machine_checks]]", strings.Join(cmd, " "), err)
	case how == "":
		b.httpCheck(key, p, t, processes)
	default:
		b.httpCheck(key, p, t, processes)
		last := &b.rep.Entries[len(b.rep.Entries)-1]
		if last.Status == Mapped {
			last.Status = Approximated
			last.Warning = how
		}
	}
}

// volume adds a named volume as [[mounts]] and the command that creates it.
func (b *builder) volume(key, name, dest string, sizeGB int, processes []string) {
	c := b.cfg()
	src := volumeName(name)
	for _, m := range c.Mounts {
		if len(m.Processes) == 0 || len(processes) == 0 || m.Processes[0] == processes[0] {
			b.none(key, "a machine can mount one volume; %s (%s) was left out: put its data under %s or in a separate app", name, dest, m.Destination)
			return
		}
	}
	m := &FlyMount{Source: src, Destination: dest, Processes: processes}
	if sizeGB > 0 {
		m.InitialSize = fmt.Sprintf("%dgb", sizeGB)
	}
	c.Mounts = append(c.Mounts, m)
	b.mapped(key, "[[mounts]] "+src)
	size := sizeGB
	if size <= 0 {
		size = 1
	}
	// No --region: Hangar creates the volume in its host's region, and
	// refuses another one (the source's region names a Fly region).
	b.action("hangar volumes create %s --size %d -a %s", src, size, b.app.Name)
}

// count records a machine count for a process group.
func (b *builder) count(key, process string, n int) {
	if n < 0 {
		b.none(key, "negative replica count %d ignored", n)
		return
	}
	if process == "" {
		process = "app"
	}
	b.counts[process] = n
	b.approx(key, "hangar scale count", "fly.toml holds no machine count: run the `hangar scale count` command under next steps")
}

// size picks the nearest preset for cpus and memory and records the [[vm]]
// entry and the scale commands.
func (b *builder) size(key string, cpus float64, memMB int, processes []string) {
	name, mem := nearestPreset(cpus, memMB)
	vm := &FlyVM{Size: name, Processes: processes}
	if mem > 0 {
		vm.Memory = fmt.Sprintf("%dmb", mem)
	}
	b.cfg().VM = append(b.cfg().VM, vm)
	desc := []string{}
	if cpus > 0 {
		desc = append(desc, fmt.Sprintf("%g CPU", cpus))
	}
	if memMB > 0 {
		desc = append(desc, fmt.Sprintf("%d MB", memMB))
	}
	b.approx(key, "[[vm]] size = "+name, "%s mapped to the nearest preset %s%s", strings.Join(desc, ", "), name, ifs(mem > 0, fmt.Sprintf(" with memory %d MB", mem)))
	b.action("hangar scale vm %s -a %s%s", name, b.app.Name, ifs(len(processes) == 1, " --process-group "+firstOr(processes, "")))
	if mem > 0 {
		b.action("hangar scale memory %d -a %s%s", mem, b.app.Name, ifs(len(processes) == 1, " --process-group "+firstOr(processes, "")))
	}
}

// cron reports a scheduled job and suggests a scheduled machine.
func (b *builder) cron(key, schedule, command string) {
	b.cronOnly = b.cfg().HTTPService == nil && len(b.cfg().Services) == 0
	sched, exact := flySchedule(schedule)
	image := "IMAGE"
	if bd := b.cfg().Build; bd != nil && bd.Image != "" {
		image = bd.Image
	}
	cmd := fmt.Sprintf("hangar machine run %s --schedule %s -a %s", image, sched, b.app.Name)
	if command != "" {
		cmd += " -- " + command
	}
	b.action("%s", cmd)
	w := fmt.Sprintf("cron schedule %q has no fly.toml key: run it as a scheduled machine (see next steps)", schedule)
	if !exact {
		w += fmt.Sprintf("; machines run hourly, daily, weekly or monthly, so %q became %s", schedule, sched)
	}
	b.approx(key, "hangar machine run --schedule "+sched, "%s", w)
}

// restart maps a restart policy.
func (b *builder) restart(key, policy string, retries int, processes []string) {
	p := ""
	switch strings.ToLower(strings.ReplaceAll(policy, "_", "-")) {
	case "always", "unless-stopped":
		p = "always"
	case "on-failure":
		p = "on-failure"
	case "no", "never":
		p = "never"
	default:
		b.none(key, "unknown restart policy %q ignored", policy)
		return
	}
	b.cfg().Restart = append(b.cfg().Restart, &FlyRestart{Policy: p, Retries: retries, Processes: processes})
	if policy == "unless-stopped" {
		b.approx(key, "[[restart]] policy = always", "unless-stopped became always: a machine stopped by hand stays stopped anyway")
		return
	}
	b.mapped(key, "[[restart]] policy = "+p)
}

// release sets [deploy] release_command.
func (b *builder) release(key, cmd string) {
	if strings.TrimSpace(cmd) == "" {
		return
	}
	c := b.cfg()
	if c.Deploy == nil {
		c.Deploy = &FlyDeploy{}
	}
	if c.Deploy.ReleaseCommand != "" {
		b.none(key, "a release command is already set (%q); %q must be chained into it by hand", c.Deploy.ReleaseCommand, cmd)
		return
	}
	c.Deploy.ReleaseCommand = cmd
	b.approx(key, "[deploy] release_command", "the release command runs once per deploy in a temporary machine with the new image and the app's secrets, but without volumes")
}

// portEnv sets PORT in [env] to match the internal port, for platforms that
// inject $PORT.
func (b *builder) portEnv(key string, port int, platform string) {
	c := b.cfg()
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	if v, ok := c.Env["PORT"]; ok && v != fmt.Sprint(port) {
		b.approx(key, "[env] PORT", "PORT was %s in the source; set to %d to match internal_port", v, port)
	} else {
		b.approx(key, "[env] PORT", "%s injects $PORT at run time; fly.toml sets PORT = %d to match [http_service] internal_port", platform, port)
	}
	c.Env["PORT"] = fmt.Sprint(port)
}

func boolPtr(v bool) *bool { return &v }
func intPtr(v int) *int    { return &v }

func ifs(c bool, s string) string {
	if c {
		return s
	}
	return ""
}

func firstOr(s []string, d string) string {
	if len(s) > 0 {
		return s[0]
	}
	return d
}

// rewriteHosts replaces host names of other units in an env value with
// their private addresses, and returns the names it replaced. In a URL
// only the host part counts (redis://redis:6379/redis changes once); a
// plain value counts when it is a host or a list of host[:port].
func rewriteHosts(value string, hosts map[string]string) (string, []string) {
	hit := map[string]bool{}
	swapHost := func(hp string) string {
		h, port := hp, ""
		if i := strings.LastIndexByte(hp, ':'); i >= 0 && !strings.Contains(hp[i+1:], "]") {
			h, port = hp[:i], hp[i:]
		}
		if a, ok := hosts[h]; ok {
			hit[h] = true
			return a + port
		}
		return hp
	}
	swapList := func(list string) string {
		parts := strings.Split(list, ",")
		for i, p := range parts {
			parts[i] = swapHost(p)
		}
		return strings.Join(parts, ",")
	}
	var out string
	if strings.Contains(value, "://") {
		out = urlRE.ReplaceAllStringFunc(value, func(u string) string {
			i := strings.Index(u, "://") + 3
			rest := u[i:]
			end := strings.IndexAny(rest, "/?#")
			if end < 0 {
				end = len(rest)
			}
			auth := rest[:end]
			user := ""
			if at := strings.LastIndexByte(auth, '@'); at >= 0 {
				user, auth = auth[:at+1], auth[at+1:]
			}
			return u[:i] + user + swapList(auth) + rest[end:]
		})
	} else if strings.TrimSpace(value) == value && !strings.ContainsAny(value, " \t\n") {
		fields := listRE.Split(value, -1)
		seps := listRE.FindAllString(value, -1)
		var b strings.Builder
		for i, f := range fields {
			b.WriteString(swapHost(f))
			if i < len(seps) {
				b.WriteString(seps[i])
			}
		}
		out = b.String()
	} else {
		out = value // free text, not a host list
	}
	names := make([]string, 0, len(hit))
	for h := range hit {
		names = append(names, h)
	}
	sort.Strings(names)
	return out, names
}

var (
	urlRE  = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]+`)
	listRE = regexp.MustCompile(`[,;]+`)
)

// fromSource replaces a buildpack build (which Hangar cannot run) with one
// it can: builtin = "go", or a Dockerfile generated for the language. Call
// it once the processes and the release command are known: builtin go
// rewrites them.
func (b *builder) fromSource(key, dir, platform string, lang srcLang, buildCmd string, port int) {
	c := b.cfg()
	var cmds []string
	for _, g := range sortedKeys(c.Processes) {
		cmds = append(cmds, c.Processes[g])
	}
	if c.Deploy != nil && c.Deploy.ReleaseCommand != "" {
		cmds = append(cmds, c.Deploy.ReleaseCommand)
	}
	sb, err := buildFromSource(dir, platform, lang, buildCmd, port, cmds)
	if err != nil || sb == nil {
		c.Build = nil
		b.none(key, "%s built the app with a buildpack, which Hangar cannot run, and its language could not be told (no Gemfile, package.json, requirements.txt, pyproject.toml, go.mod or mix.exs%s): write a Dockerfile next to fly.toml, or set [build] image", platform, ifs(lang.Name != "", "; "+lang.Name+" has no generated Dockerfile"))
		return
	}
	c.Build = sb.Build
	b.app.Dockerfile = sb.Dockerfile
	for g, cmd := range c.Processes {
		if n, ok := sb.Commands[cmd]; ok {
			c.Processes[g] = n
		}
	}
	if c.Deploy != nil {
		// The release machine runs the image's entrypoint (the binary)
		// with these arguments.
		if n, ok := sb.Commands[c.Deploy.ReleaseCommand]; ok && n != "" {
			c.Deploy.ReleaseCommand = n
		} else if ok {
			b.none("[deploy] release_command", "the release command %q runs the app's binary without arguments, which would start the server: give it the arguments that make it run the release task", c.Deploy.ReleaseCommand)
		}
	}
	target := "[build] dockerfile = \"Dockerfile\" (generated)"
	if sb.Build.Builtin != "" {
		target = "[build] builtin = \"go\""
	}
	b.approx(key, target, "%s", sb.Why)
	if sb.Dockerfile != nil {
		b.rep.Notes = appendOnce(b.rep.Notes, "a Dockerfile was generated next to the fly.toml of an app built from source: `hangar deploy` builds with the fly.toml's directory as the context, so keep both in the app's source directory (move them there if --out pointed elsewhere)")
	}
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// buildIn sets [build] dockerfile for a build whose context is ctx and
// whose Dockerfile is df, both relative to the source directory: the
// config is written in the context (hangar deploy builds the config's
// directory) with the Dockerfile relative to it. It says false, changing
// nothing, for a context outside the source directory.
func (b *builder) buildIn(ctx, df string) bool {
	ctx = filepath.Clean(ctx)
	if ctx == "." || !filepath.IsLocal(ctx) || filepath.IsAbs(df) {
		return false
	}
	rel, err := filepath.Rel(ctx, filepath.Clean(df))
	if err != nil {
		return false
	}
	if b.cfg().Build == nil {
		b.cfg().Build = &FlyBuild{}
	}
	b.cfg().Build.Dockerfile = filepath.ToSlash(rel)
	b.app.Context = ctx
	return true
}
