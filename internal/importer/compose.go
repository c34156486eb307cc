package importer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	ctypes "github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
	"gopkg.in/yaml.v3"
)

var composeNames = []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}
var composeOverrides = []string{"compose.override.yaml", "compose.override.yml", "docker-compose.override.yml", "docker-compose.override.yaml"}

func importCompose(path string, isDir bool, opts Options) (*Result, error) {
	dir, files := path, []string(nil)
	if isDir {
		f, ok := findFile(path, composeNames...)
		if !ok {
			return nil, inputErr(path, "pass the compose file itself, or a directory holding compose.yaml or docker-compose.yml", "no compose file found (looked for %s)", strings.Join(composeNames, ", "))
		}
		files = append(files, f)
		if o, ok := findFile(path, composeOverrides...); ok {
			files = append(files, o)
		}
	} else {
		dir = filepath.Dir(path)
		files = []string{path}
	}
	var cfgFiles []ctypes.ConfigFile
	for _, f := range files {
		b, err := readInput(f)
		if err != nil {
			return nil, err
		}
		cfgFiles = append(cfgFiles, ctypes.ConfigFile{Filename: f, Content: b})
	}
	return convertCompose(dir, cfgFiles, opts)
}

// logrusMu serializes loads so that silencing compose-go's logrus output
// does not race.
var logrusMu sync.Mutex

// guardLoader refuses extends/include targets that are not regular files
// (a /dev/zero would never end) or are too large.
type guardLoader struct{ dir string }

func (g guardLoader) Accept(p string) bool {
	if !filepath.IsAbs(p) {
		p = filepath.Join(g.dir, p)
	}
	st, err := os.Stat(p)
	return err == nil && (!st.Mode().IsRegular() || st.Size() > 16<<20)
}
func (g guardLoader) Load(context.Context, string) (string, error) {
	return "", errors.New("not a regular file of at most 16 MiB")
}
func (g guardLoader) Dir(p string) string { return filepath.Dir(p) }

// loadCompose runs the reference loader offline: interpolation from the
// project's .env only (never the caller's environment, so results are
// reproducible), anchors, extends, include and profiles resolved.
func loadCompose(dir string, files []ctypes.ConfigFile, opts Options) (*ctypes.Project, []string, error) {
	env := map[string]string{}
	if p, ok := findFile(dir, ".env"); ok {
		if e, err := dotenv.GetEnvFromFile(map[string]string{}, []string{p}); err == nil {
			env = e
		}
	}
	var missing []string
	seen := map[string]bool{}
	placeholders := map[string]string{}
	required := false
	lookup := func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		if !seen[k] {
			seen[k] = true
			missing = append(missing, k)
		}
		if v, ok := placeholders[k]; ok {
			return v, true
		}
		if required {
			return "", true
		}
		return "", false
	}
	name := loader.NormalizeProjectName(filepath.Base(mustAbs(dir)))
	if name == "" {
		name = "app"
	}
	profiles := opts.Profiles
	load := func() (*ctypes.Project, error) {
		details := ctypes.ConfigDetails{WorkingDir: dir, ConfigFiles: files, Environment: env}
		return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
			o.SetProjectName(name, false)
			o.Interpolate.LookupValue = lookup
			o.ResolvePaths = false
			o.SkipResolveEnvironment = true
			o.SkipConsistencyCheck = true
			o.Profiles = profiles
			o.ResourceLoaders = append([]loader.ResourceLoader{guardLoader{dir}}, o.ResourceLoaders...)
		})
	}
	logrusMu.Lock()
	defer logrusMu.Unlock()
	lvl := logrus.GetLevel()
	logrus.SetLevel(logrus.PanicLevel)
	defer logrus.SetLevel(lvl)
	p, err := load()
	if err != nil && len(missing) > 0 {
		// A file taken without its .env: unset variables can leave specs
		// such as "${DATA_DIR}:/data" broken. Retry as compose would with
		// the variables set: ${X:?msg} gets an empty value, and a variable
		// used as a volume source a placeholder path.
		required = true
		for _, v := range missing {
			if volumeSourceUse(files, v) {
				placeholders[v] = "./" + v
			}
		}
		if p2, err2 := load(); err2 == nil {
			p, err = p2, nil
		} else {
			// Still broken: the variables also stand for typed values
			// (durations, counts, ports). Guess by name and say so.
			for _, v := range missing {
				if _, ok := placeholders[v]; !ok && !hasDefault(files, v) {
					if g := typedPlaceholder(v); g != "" {
						placeholders[v] = g
					}
				}
			}
			if p3, err3 := load(); err3 == nil {
				p, err = p3, nil
			}
		}
	}
	if err != nil {
		if wrapped, ok := composeV1(files); ok {
			// The version 1 format: services at the top level.
			files = wrapped
			if p2, err2 := load(); err2 == nil {
				p, err = p2, nil
				missing = append(missing, "(version 1 file format: services were read from the top level)")
			}
		}
	}
	if err != nil {
		return nil, nil, &InputError{File: files[0].Filename, Err: err, Hint: "fix the compose file so that `docker compose config` accepts it (put the variables it needs in a .env file next to it)"}
	}
	sort.Strings(missing) // the loader visits maps in random order
	envFile := filepath.Join(dir, ".env")
	for i, v := range missing {
		if ph, ok := placeholders[v]; ok {
			missing[i] = fmt.Sprintf("variable %s is not set in %s: the placeholder %q was used so that the file loads; check the values that use it", v, envFile, ph)
		} else if strings.HasPrefix(v, "(") {
			missing[i] = strings.Trim(v, "()")
		} else {
			missing[i] = fmt.Sprintf("variable %s is not set in %s; its default or an empty value was used", v, envFile)
		}
	}
	return p, missing, nil
}

// hasDefault says whether a file gives the variable a default (${X:-d}).
func hasDefault(files []ctypes.ConfigFile, name string) bool {
	re := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `:?-`)
	for _, f := range files {
		if re.Match(f.Content) {
			return true
		}
	}
	return false
}

// typedPlaceholder guesses a value of the right type for an unset variable
// from its name, for files that only load with their .env.
func typedPlaceholder(name string) string {
	n := strings.ToUpper(name)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(n, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("INTERVAL", "TIMEOUT", "PERIOD", "DELAY", "WINDOW", "GRACE", "DURATION"):
		return "30s"
	case has("PORT", "BIND"):
		return "8080"
	case has("RETRIES", "REPLICAS", "SCALE", "COUNT", "NUM", "WORKERS", "SIZE", "LIMIT", "MAX", "MIN", "CPUS"):
		return "1"
	case has("MEM"):
		return "512m"
	}
	return ""
}

// composeV1 rewrites files in the version 1 format (every top-level key a
// service with an image or a build) under a services key.
func composeV1(files []ctypes.ConfigFile) ([]ctypes.ConfigFile, bool) {
	out := make([]ctypes.ConfigFile, len(files))
	for i, f := range files {
		var top map[string]any
		if err := yaml.Unmarshal(f.Content, &top); err != nil || len(top) == 0 {
			return nil, false
		}
		if _, ok := top["services"]; ok {
			return nil, false
		}
		for _, v := range top {
			svc, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if _, img := svc["image"]; !img {
				if _, build := svc["build"]; !build {
					return nil, false
				}
			}
		}
		data, err := yaml.Marshal(map[string]any{"services": top})
		if err != nil {
			return nil, false
		}
		out[i] = ctypes.ConfigFile{Filename: f.Filename, Content: data}
	}
	return out, true
}

// volumeSourceUse says whether ${name} appears right before ":/" in a
// compose file, as the source of a volume.
func volumeSourceUse(files []ctypes.ConfigFile, name string) bool {
	re := regexp.MustCompile(`\$\{` + regexp.QuoteMeta(name) + `(:?[-?+][^}]*)?\}:[/~.]`)
	for _, f := range files {
		if re.Match(f.Content) {
			return true
		}
	}
	return false
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// composeUnit is one service about to become an app, or a process group
// of an app shared with services that run the same image.
type composeUnit struct {
	svc   ctypes.ServiceConfig
	app   string
	db    string
	port  int    // the port other apps reach it on
	group string // process group name when the app has several; "" otherwise
}

// pg is the unit's process group name.
func (u *composeUnit) pg() string {
	if u.group == "" {
		return "app"
	}
	return u.group
}

// procs is the processes filter for the unit's sections.
func (u *composeUnit) procs() []string {
	if u.group == "" {
		return nil
	}
	return []string{u.group}
}

// shareKey is equal for services that can be process groups of one app:
// same image or build, entrypoint, environment and env files, stop
// settings. "" means the service needs its own app.
func shareKey(s ctypes.ServiceConfig, db string) string {
	if db != "" {
		return ""
	}
	k := struct {
		Image      string
		Build      *ctypes.BuildConfig
		Entrypoint []string
		Env        map[string]*string
		EnvFiles   []ctypes.EnvFile
		Stop       string
		Grace      *ctypes.Duration
	}{Entrypoint: s.Entrypoint, Env: s.Environment, EnvFiles: s.EnvFiles, Stop: s.StopSignal, Grace: s.StopGracePeriod, Build: s.Build}
	if s.Build == nil {
		k.Image = s.Image
	}
	if k.Image == "" && k.Build == nil {
		return ""
	}
	b, err := json.Marshal(k)
	if err != nil {
		return ""
	}
	return string(b)
}

func convertCompose(dir string, files []ctypes.ConfigFile, opts Options) (*Result, error) {
	if len(files) == 0 {
		return nil, errors.New("no compose file given")
	}
	proj, missing, err := loadCompose(dir, files, opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Format: "compose", Source: files[0].Filename}
	res := &Result{Report: rep}
	top := map[string]any{}
	_ = yaml.Unmarshal(files[0].Content, &top) // already validated by the loader
	for _, k := range sortedKeys(top) {
		switch {
		case k == "version":
			rep.Entries = append(rep.Entries, Entry{Key: "version", Status: Unsupported, Warning: "obsolete; ignored"})
		case k == "name":
			rep.Entries = append(rep.Entries, Entry{Key: "name", Status: Approximated, Target: "app names", Warning: "the project name prefixes the app names"})
		case k == "include":
			rep.Entries = append(rep.Entries, Entry{Key: "include", Status: Mapped, Target: "(resolved)", Warning: ""})
		case k == "networks":
			rep.Entries = append(rep.Entries, Entry{Key: "networks", Status: Approximated, Target: "private network", Warning: "all apps of an organization share one private network (<app>.internal); separate compose networks do not isolate apps from each other"})
		case k == "volumes":
			rep.Entries = append(rep.Entries, Entry{Key: "volumes", Status: Approximated, Target: "[[mounts]]", Warning: "named volumes become volumes created with `hangar volumes create`; drivers, driver_opts and external volumes are not kept, and data is not copied"})
		case k == "secrets", k == "configs":
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Approximated, Target: "[[files]]", Warning: "see each service's " + k})
		case k == "services":
		case strings.HasPrefix(k, "x-"):
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Mapped, Target: "(extension fields, resolved into services)"})
		default:
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Unsupported, Warning: "no equivalent; ignored"})
		}
	}
	rep.Notes = append(rep.Notes, missing...)
	for _, name := range sortedKeys(proj.DisabledServices) {
		rep.Entries = append(rep.Entries, Entry{Key: "services." + name, Status: Unsupported, Warning: fmt.Sprintf("service is in profile(s) %s, which are not enabled: skipped (use --profile to include it)", strings.Join(proj.DisabledServices[name].Profiles, ", "))})
	}
	names := sortedKeys(proj.Services)
	if len(names) == 0 {
		return nil, inputErr(files[0].Filename, "add a service, or enable its profile with --profile", "the compose file defines no enabled service")
	}
	units := make([]*composeUnit, 0, len(names))
	hosts := map[string]string{}
	used := map[string]bool{}
	// Services that run the same image with the same environment become
	// process groups of one app, as long as at most one publishes ports.
	groups := map[string][]string{}
	var order []string
	for _, n := range names {
		s := proj.Services[n]
		db := dbKind(s.Image)
		if s.Build != nil {
			db = ""
		}
		key := shareKey(s, db)
		if key == "" {
			key = "\x00" + n
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], n)
	}
	var split []string
	for _, key := range order {
		members := groups[key]
		published := 0
		for _, m := range members {
			if len(proj.Services[m].Ports) > 0 {
				published++
			}
		}
		if published > 1 {
			// Two public services: keep separate apps.
			for _, m := range members {
				groups["\x00"+m] = []string{m}
				split = append(split, "\x00"+m)
			}
			delete(groups, key)
			continue
		}
		split = append(split, key)
	}
	apps := len(split)
	for _, key := range split {
		members := groups[key]
		primary := members[0]
		for _, m := range members {
			if len(proj.Services[m].Ports) > 0 {
				primary = m
			}
		}
		app := uniqueName(used, nameFor(opts, proj.Name, primary, apps > 1))
		for _, n := range members {
			s := proj.Services[n]
			u := &composeUnit{svc: s, app: app, db: dbKind(s.Image)}
			if s.Build != nil {
				u.db = ""
			}
			if len(members) > 1 {
				u.group = processName(n)
			}
			units = append(units, u)
		}
	}
	owner := map[string]string{} // host name -> service it names
	for _, u := range units {
		s := u.svc
		addr := u.app + ".internal"
		if u.group != "" {
			// Fly's DNS name of one process group's machines.
			addr = u.group + ".process." + u.app + ".internal"
		}
		set := func(h string) {
			if h != "" {
				hosts[h] = addr
				owner[h] = s.Name
			}
		}
		set(s.Name)
		set(s.ContainerName)
		set(s.Hostname)
		for _, nw := range s.Networks {
			if nw != nil {
				for _, a := range nw.Aliases {
					set(a)
				}
			}
		}
	}
	// links: "service:alias" names the service alias inside the linking one.
	for _, n := range names {
		for _, l := range proj.Services[n].Links {
			if svc, alias, ok := strings.Cut(l, ":"); ok {
				if addr, known := hosts[svc]; known {
					if _, taken := hosts[alias]; !taken {
						hosts[alias] = addr
						owner[alias] = svc
					}
				}
			}
		}
	}
	byService := map[string]*composeUnit{}
	for _, u := range units {
		byService[u.svc.Name] = u
	}
	builders := map[string]*builder{}
	var appOrder []string
	for _, u := range units {
		others := map[string]string{}
		for h, a := range hosts {
			if owner[h] != u.svc.Name {
				others[h] = a
			}
		}
		b, ok := builders[u.app]
		if !ok {
			b = newBuilder(rep, opts, u.app, "service "+u.svc.Name)
			builders[u.app] = b
			appOrder = append(appOrder, u.app)
		} else {
			b.app.From += ", " + u.svc.Name
		}
		b.self = []string{u.svc.Name}
		for h, svc := range owner {
			if svc == u.svc.Name && h != u.svc.Name {
				b.self = append(b.self, h)
			}
		}
		sort.Strings(b.self)
		if u.group != "" {
			b.approx("services."+u.svc.Name, "[processes] "+u.group, "runs as process group %s of app %s: same image and environment as the app's other services", u.group, u.app)
		}
		convertComposeService(b, proj, dir, u, others, byService)
	}
	sort.Strings(appOrder)
	for _, a := range appOrder {
		res.Apps = append(res.Apps, builders[a].flush())
	}
	return res, nil
}

var processNameBad = regexp.MustCompile(`[^a-z0-9_]+`)

// processName makes a process group name from a service name.
func processName(s string) string {
	n := strings.Trim(processNameBad.ReplaceAllString(strings.ToLower(s), "_"), "_")
	if n == "" {
		return "app"
	}
	return n
}

// composeKeys lists the keys set on a service, from its struct tags.
func composeKeys(s ctypes.ServiceConfig) []string {
	var keys []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name := strings.Split(tag, ",")[0]
			if strings.Contains(tag, "inline") && f.Type.Kind() == reflect.Struct {
				walk(v.Field(i))
				continue
			}
			if name == "" || name == "-" || strings.HasPrefix(name, "#") || !f.IsExported() {
				continue
			}
			if !v.Field(i).IsZero() {
				keys = append(keys, name)
			}
		}
	}
	walk(reflect.ValueOf(s))
	sort.Strings(keys)
	return keys
}

func convertComposeService(b *builder, proj *ctypes.Project, dir string, u *composeUnit, hosts map[string]string, units map[string]*composeUnit) {
	s := u.svc
	k := func(key string) string { return "services." + s.Name + "." + key }
	c := b.cfg()
	env := map[string]string{}
	for n, v := range s.Environment {
		if v != nil {
			env[n] = *v
		}
	}
	keys := composeKeys(s)
	has := map[string]bool{}
	for _, key := range keys {
		has[key] = true
	}
	// Image and build first: checks and cron commands refer to them.
	if s.Build != nil {
		composeBuild(b, dir, s, k("build"))
		if s.Image != "" {
			b.approx(k("image"), "", "image %q names the image that build produces; the platform names its own", s.Image)
		}
	} else if s.Image != "" {
		c.Build = &FlyBuild{Image: s.Image}
		b.mapped(k("image"), "[build] image")
	} else {
		b.none(k("image"), "the service has neither image nor build: set [build] by hand")
	}
	// Service-level sizes, unless deploy.resources says more.
	if (has["cpus"] || has["mem_limit"] || has["cpu_count"]) && (s.Deploy == nil || (s.Deploy.Resources.Limits == nil && s.Deploy.Resources.Reservations == nil)) {
		cpus := float64(s.CPUS)
		if s.CPUCount > 0 {
			cpus = float64(s.CPUCount)
		}
		key := "cpus"
		if has["mem_limit"] {
			key = "mem_limit"
		}
		b.size(k(key), cpus, int(int64(s.MemLimit)/(1<<20)), u.procs())
	}
	// Ports decide the http_service, which checks attach to.
	composePorts(b, s, k, u)
	for _, key := range keys {
		kk := k(key)
		switch key {
		case "name", "image", "build", "ports", "expose":
		case "command":
			cmd := shellJoin(s.Command)
			b.process(u.pg(), cmd)
			b.mapped(kk, "[processes] "+u.pg())
		case "entrypoint":
			c.Experimental = &FlyExperimental{Entrypoint: s.Entrypoint}
			b.approx(kk, "[experimental] entrypoint", "entrypoint override is an experimental fly.toml key")
		case "environment":
			for _, n := range sortedKeys(s.Environment) {
				v := s.Environment[n]
				ek := kk + "." + n
				if v == nil {
					b.secret(ek, n, "", "the value comes from the shell that runs compose")
					continue
				}
				nv, hit := rewriteHosts(*v, hosts)
				if len(hit) > 0 {
					b.env(ek, n, nv)
					last := &b.rep.Entries[len(b.rep.Entries)-1]
					last.Status = Approximated
					w := fmt.Sprintf("host %s rewritten to its app's private address", strings.Join(hit, ", "))
					if last.Warning != "" {
						last.Warning = w + "; " + last.Warning
					} else {
						last.Warning = w
					}
					if looksSecret(n, *v) && b.opts.IncludeSecretValues {
						b.app.Secrets[b.secrets[n]].Value = nv
					}
					continue
				}
				b.env(ek, n, *v)
			}
		case "env_file":
			for _, ef := range s.EnvFiles {
				p := ef.Path
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				vals, err := readDotenv(p)
				if err != nil {
					if bool(ef.Required) {
						b.none(kk, "env_file %s could not be read (%v): its variables were not imported; add them with `hangar secrets set`", ef.Path, err)
					} else {
						b.mapped(kk, "(optional file absent)")
					}
					continue
				}
				for _, n := range sortedKeys(vals) {
					if _, dup := s.Environment[n]; dup {
						continue
					}
					b.secret(kk+"."+n, n, vals[n], "from env_file "+ef.Path)
				}
			}
		case "healthcheck":
			composeHealth(b, kk, s, env, u)
		case "volumes":
			composeVolumes(b, proj, kk, s, u)
		case "deploy":
			composeDeploy(b, kk, s, u)
		case "scale":
			b.count(kk, u.group, *s.Scale)
		case "cpus", "mem_limit", "cpu_count":
			// handled before the loop
		case "mem_reservation", "cpu_shares", "cpu_quota", "cpu_period", "cpuset", "memswap_limit", "mem_swappiness", "pids_limit", "shm_size", "oom_kill_disable", "oom_score_adj", "blkio_config", "cpu_percent", "cpu_rt_period", "cpu_rt_runtime", "ulimits":
			b.none(kk, "fine-grained resource control has no equivalent; size machines with [[vm]]")
		case "restart":
			b.restart(kk, s.Restart, 0, u.procs())
		case "depends_on":
			for _, dep := range sortedKeys(s.DependsOn) {
				d := s.DependsOn[dep]
				target := hosts[dep]
				if target == "" {
					b.none(kk+"."+dep, "depends on %s, which is not converted (disabled or unknown)", dep)
					continue
				}
				w := fmt.Sprintf("%s is a separate app reachable at %s; apps start independently, so the app must retry until it is up", dep, target)
				if d.Condition == ctypes.ServiceConditionHealthy || d.Condition == ctypes.ServiceConditionCompletedSuccessfully {
					w += fmt.Sprintf(" (condition %s is not enforced)", d.Condition)
				}
				b.approx(kk+"."+dep, "", "%s", w)
			}
		case "links":
			b.approx(kk, "<app>.internal", "links are not needed: every app is reachable at <app>.internal on the private network")
		case "external_links":
			b.none(kk, "containers outside the project are not reachable; point the app at their new addresses")
		case "networks":
			only := len(s.Networks) == 1 && s.Networks["default"] == nil
			if _, ok := s.Networks["default"]; ok && only {
				b.mapped(kk, "private network")
			} else {
				b.approx(kk, "private network", "all apps share one private network; network names, aliases (rewritten where used in env), static IPs and isolation are not kept")
			}
		case "network_mode":
			b.none(kk, "network_mode %q has no equivalent: every machine has its own private IPv6 address", s.NetworkMode)
		case "container_name", "hostname":
			b.approx(kk, "<app>.internal", "reach this service at %s.internal; references in other services' env were rewritten", b.app.Name)
		case "stop_grace_period":
			c.KillTimeout = time.Duration(*s.StopGracePeriod).String()
			b.mapped(kk, "kill_timeout")
		case "stop_signal":
			c.KillSignal = strings.ToUpper(s.StopSignal)
			if !strings.HasPrefix(c.KillSignal, "SIG") {
				c.KillSignal = "SIG" + c.KillSignal
			}
			b.mapped(kk, "kill_signal")
		case "secrets":
			composeSecretFiles(b, proj, dir, kk, s.Secrets, "/run/secrets/", true)
		case "configs":
			composeSecretFiles(b, proj, dir, kk, ctypesConfigs(s.Configs), "/", false)
		case "logging", "log_driver", "log_opt":
			b.none(kk, "log drivers are not configurable: stdout/stderr go to `hangar logs`; ship them with a log shipper app")
		case "labels", "annotations", "label_file":
			b.none(kk, "labels have no equivalent (reverse-proxy labels such as Traefik's are replaced by [http_service])")
		case "profiles":
			b.mapped(kk, "(profile enabled)")
		case "extends":
			b.mapped(kk, "(resolved)")
		case "platform":
			b.approx(kk, "", "machines run linux/amd64 unless the host is arm64; build the image for the host's architecture")
		case "develop", "pull_policy", "attach", "stdin_open", "tty", "pull_refresh_after":
			b.none(kk, "development-time option; ignored")
		case "privileged", "cap_add", "cap_drop", "security_opt", "devices", "device_cgroup_rules", "sysctls", "userns_mode", "ipc", "pid", "uts", "cgroup", "cgroup_parent", "runtime", "isolation", "group_add", "use_api_socket", "credential_spec", "storage_opt", "read_only", "init", "gpus":
			b.none(kk, "container runtime option with no equivalent; machines run unprivileged with their own kernel namespace")
		case "working_dir", "user", "domainname", "mac_address", "umask":
			b.none(kk, "set it in the Dockerfile (WORKDIR / USER) instead")
		case "dns", "dns_opt", "dns_search", "extra_hosts":
			b.none(kk, "name resolution is the platform's (*.internal); put extra hosts in the image or the app's config")
		case "tmpfs":
			b.approx(kk, "", "the machine's root filesystem is already discarded on every deploy; no tmpfs is mounted")
		case "volumes_from", "volume_driver":
			b.none(kk, "machines cannot share volumes")
		case "post_start", "pre_stop", "pre_start":
			b.none(kk, "lifecycle hooks have no equivalent; run them from the image's entrypoint")
		default:
			b.none(kk, "no equivalent; ignored")
		}
	}
	if u.db != "" {
		b.databaseApp(k("image"), u.db, u.port, len(c.Mounts) > 0)
	}
	if u.group != "" && len(s.Command) == 0 {
		// The image's own command; flyctl runs the image CMD for "".
		b.process(u.group, "")
	}
	if c.HTTPService != nil && len(c.Processes) > 0 && len(c.HTTPService.Processes) == 0 && len(u.svc.Ports) > 0 {
		c.HTTPService.Processes = []string{u.pg()}
	}
}

func ctypesConfigs(cs []ctypes.ServiceConfigObjConfig) []ctypes.ServiceSecretConfig {
	out := make([]ctypes.ServiceSecretConfig, len(cs))
	for i, c := range cs {
		out[i] = ctypes.ServiceSecretConfig(c)
	}
	return out
}

func readDotenv(p string) (map[string]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > 1<<20 {
		return nil, errors.New("not a regular file of at most 1 MiB")
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return dotenv.ParseWithLookup(io.LimitReader(f, 1<<20), func(string) (string, bool) { return "", false })
}

func composeBuild(b *builder, dir string, s ctypes.ServiceConfig, key string) {
	bc := s.Build
	ctxDir := bc.Context
	if ctxDir == "" {
		ctxDir = "."
	}
	df := bc.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	fb := &FlyBuild{Target: bc.Target}
	if strings.Contains(ctxDir, "://") || strings.HasPrefix(ctxDir, "git@") {
		fb.Dockerfile = df
		b.approx(key+".context", "[build] dockerfile", "remote build context %s: clone it and deploy from there", ctxDir)
	} else {
		fb.Dockerfile = filepath.ToSlash(filepath.Clean(filepath.Join(ctxDir, df)))
		if filepath.IsAbs(df) {
			fb.Dockerfile = filepath.ToSlash(df)
		}
		if filepath.Clean(ctxDir) != "." {
			b.approx(key+".context", "[build] dockerfile", "build context is %s: run `hangar deploy` with that directory as the build context (COPY paths in the Dockerfile are relative to it)", ctxDir)
		} else {
			b.mapped(key+".context", "[build] dockerfile")
		}
	}
	if bc.DockerfileInline != "" {
		b.none(key+".dockerfile_inline", "inline Dockerfiles are not supported: write it to a Dockerfile")
	}
	if bc.Target != "" {
		b.mapped(key+".target", "[build] build-target")
	}
	for _, n := range sortedKeys(bc.Args) {
		if fb.Args == nil {
			fb.Args = map[string]string{}
		}
		if v := bc.Args[n]; v != nil {
			fb.Args[n] = *v
		} else {
			fb.Args[n] = ""
		}
	}
	if len(bc.Args) > 0 {
		b.mapped(key+".args", "[build.args]")
	}
	for _, x := range []struct {
		name string
		set  bool
	}{{"cache_from", len(bc.CacheFrom) > 0}, {"cache_to", len(bc.CacheTo) > 0}, {"ssh", len(bc.SSH) > 0}, {"secrets", len(bc.Secrets) > 0}, {"additional_contexts", len(bc.AdditionalContexts) > 0}, {"platforms", len(bc.Platforms) > 0}, {"network", bc.Network != ""}, {"extra_hosts", len(bc.ExtraHosts) > 0}, {"labels", len(bc.Labels) > 0}, {"tags", len(bc.Tags) > 0}, {"shm_size", bc.ShmSize != 0}, {"privileged", bc.Privileged}} {
		if x.set {
			b.none(key+"."+x.name, "build option with no [build] equivalent; ignored")
		}
	}
	b.cfg().Build = fb
}

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
				b.approx(key, "[[services]] protocol = udp", "UDP needs a dedicated IPv4 address: `hangar ips allocate-v4 -a %s`", b.app.Name)
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

func composeVolumes(b *builder, proj *ctypes.Project, key string, s ctypes.ServiceConfig, u *composeUnit) {
	for i, v := range s.Volumes {
		kk := fmt.Sprintf("%s[%d]", key, i)
		switch v.Type {
		case ctypes.VolumeTypeBind:
			if u.db != "" && !strings.Contains(filepath.Base(v.Target), ".") {
				// A database's data directory on the host: keep the data on a volume.
				b.volume(kk, s.Name+"_data", v.Target, 0, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = fmt.Sprintf("the database's data directory was the host path %s; it is now a volume: copy the data over (e.g. pg_dump/restore)", v.Source)
				}
				continue
			}
			if strings.Contains(v.Source, "docker.sock") || strings.Contains(v.Target, "docker.sock") {
				b.none(kk, "the Docker socket (%s) is not available to machines", v.Source)
				continue
			}
			b.none(kk, "bind mount %s:%s has no equivalent: COPY the files into the image, use [[files]] for a config file, or a volume for data", v.Source, v.Target)
		case ctypes.VolumeTypeVolume:
			name := v.Source
			size := 0
			if name == "" {
				name = s.Name + "_" + strings.ReplaceAll(strings.Trim(v.Target, "/"), "/", "_")
				b.volume(kk, name, v.Target, size, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "anonymous volume became a named volume"
				}
				continue
			}
			if pv, ok := proj.Volumes[name]; ok && bool(pv.External) {
				b.volume(kk, name, v.Target, size, u.procs())
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "external volume: a new, empty volume is created; copy its data over"
				}
				continue
			}
			b.volume(kk, name, v.Target, size, u.procs())
			if v.ReadOnly {
				if last := &b.rep.Entries[len(b.rep.Entries)-1]; last.Status == Mapped {
					last.Status = Approximated
					last.Warning = "read_only is not kept: the volume is mounted read-write"
				}
			}
		case ctypes.VolumeTypeTmpfs:
			b.approx(kk, "", "tmpfs %s not mounted: the root filesystem is already ephemeral", v.Target)
		default:
			b.none(kk, "volume type %s has no equivalent", v.Type)
		}
	}
}

func composeDeploy(b *builder, key string, s ctypes.ServiceConfig, u *composeUnit) {
	d := s.Deploy
	if d.Replicas != nil && s.Scale == nil {
		b.count(key+".replicas", u.group, *d.Replicas)
	}
	if d.Mode == "global" || d.Mode == "global-job" {
		b.none(key+".mode", "mode %s (one per node) has no equivalent; use `hangar scale count` per region", d.Mode)
	}
	if l := d.Resources.Limits; l != nil && (l.NanoCPUs > 0 || l.MemoryBytes > 0) {
		b.size(key+".resources.limits", float64(l.NanoCPUs), int(int64(l.MemoryBytes)/(1<<20)), u.procs())
	} else if r := d.Resources.Reservations; r != nil && (r.NanoCPUs > 0 || r.MemoryBytes > 0) {
		b.size(key+".resources.reservations", float64(r.NanoCPUs), int(int64(r.MemoryBytes)/(1<<20)), u.procs())
	}
	for _, r := range []*ctypes.Resource{d.Resources.Limits, d.Resources.Reservations} {
		if r != nil && len(r.Devices) > 0 {
			b.none(key+".resources.reservations.devices", "device reservations (GPUs) are not mapped: pick a GPU size with `hangar scale vm` (a100-40gb, l40s, ...)")
			break
		}
	}
	if rp := d.RestartPolicy; rp != nil {
		retries := 0
		if rp.MaxAttempts != nil {
			retries = int(*rp.MaxAttempts)
		}
		cond := rp.Condition
		if cond == "any" || cond == "" {
			cond = "always"
		} else if cond == "none" {
			cond = "no"
		}
		b.restart(key+".restart_policy", cond, retries, u.procs())
	}
	if d.UpdateConfig != nil || d.RollbackConfig != nil {
		b.approx(key+".update_config", "[deploy] strategy", "rolling deploys are the default; parallelism, delay and order are not kept")
	}
	if len(d.Placement.Constraints) > 0 || len(d.Placement.Preferences) > 0 {
		b.none(key+".placement", "placement constraints have no equivalent; use --region")
	}
	if len(d.Labels) > 0 {
		b.none(key+".labels", "labels have no equivalent")
	}
	if d.EndpointMode != "" {
		b.none(key+".endpoint_mode", "the proxy load-balances; endpoint_mode is not configurable")
	}
}

// composeSecretFiles maps service secrets/configs to secrets and [[files]].
func composeSecretFiles(b *builder, proj *ctypes.Project, dir, key string, refs []ctypes.ServiceSecretConfig, base string, secret bool) {
	for _, r := range refs {
		kk := key + "." + r.Source
		target := r.Target
		if target == "" {
			target = r.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = base + target
		}
		var def ctypes.FileObjectConfig
		if secret {
			def = ctypes.FileObjectConfig(proj.Secrets[r.Source])
		} else {
			def = ctypes.FileObjectConfig(proj.Configs[r.Source])
		}
		if !secret && def.File != "" {
			b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, LocalPath: def.File})
			b.mapped(kk, "[[files]] local_path")
			continue
		}
		if !secret && def.Content != "" {
			b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, RawValue: base64.StdEncoding.EncodeToString([]byte(def.Content))})
			b.mapped(kk, "[[files]] raw_value")
			continue
		}
		name := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(r.Source))
		if secret {
			name = "SECRET_" + name
		} else {
			name = "CONFIG_" + name
		}
		value := ""
		if def.File != "" {
			p := def.File
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() < 1<<20 {
				if data, err := os.ReadFile(p); err == nil {
					value = base64.StdEncoding.EncodeToString(data)
				}
			}
		}
		b.cfg().Files = append(b.cfg().Files, &FlyFile{GuestPath: target, SecretName: name})
		why := fmt.Sprintf("written to %s at boot from secret %s (base64 of the file)", target, name)
		if def.Environment != "" {
			why = fmt.Sprintf("came from variable %s; written to %s at boot from secret %s (base64)", def.Environment, target, name)
		}
		b.secret(kk, name, value, why)
	}
}

// shellJoin quotes args into one command line.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" {
			out[i] = "''"
		} else if strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]{}#~!") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
