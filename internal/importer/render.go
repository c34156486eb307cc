package importer

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

type renderFile struct {
	Services     []yaml.Node        `yaml:"services"`
	Databases    []yaml.Node        `yaml:"databases"`
	EnvVarGroups []renderGroup      `yaml:"envVarGroups"`
	Projects     []renderProject    `yaml:"projects"`
	Ungrouped    *renderEnvironment `yaml:"ungrouped"`
}

type renderProject struct {
	Name         string              `yaml:"name"`
	Environments []renderEnvironment `yaml:"environments"`
}

type renderEnvironment struct {
	Name         string        `yaml:"name"`
	Services     []yaml.Node   `yaml:"services"`
	Databases    []yaml.Node   `yaml:"databases"`
	EnvVarGroups []renderGroup `yaml:"envVarGroups"`
}

type renderGroup struct {
	Name    string      `yaml:"name"`
	EnvVars []renderVar `yaml:"envVars"`
}

type renderVar struct {
	Key           string `yaml:"key"`
	Value         any    `yaml:"value"`
	GenerateValue bool   `yaml:"generateValue"`
	Sync          *bool  `yaml:"sync"`
	FromGroup     string `yaml:"fromGroup"`
	FromDatabase  *struct {
		Name     string `yaml:"name"`
		Property string `yaml:"property"`
	} `yaml:"fromDatabase"`
	FromService *struct {
		Type      string `yaml:"type"`
		Name      string `yaml:"name"`
		Property  string `yaml:"property"`
		EnvVarKey string `yaml:"envVarKey"`
	} `yaml:"fromService"`
}

type renderService struct {
	Type             string `yaml:"type"`
	Name             string `yaml:"name"`
	Runtime          string `yaml:"runtime"`
	Env              string `yaml:"env"`
	Plan             string `yaml:"plan"`
	Region           string `yaml:"region"`
	BuildCommand     string `yaml:"buildCommand"`
	StartCommand     string `yaml:"startCommand"`
	PreDeployCommand string `yaml:"preDeployCommand"`
	ReleaseCommand   string `yaml:"releaseCommand"`
	HealthCheckPath  string `yaml:"healthCheckPath"`
	NumInstances     *int   `yaml:"numInstances"`
	Scaling          *struct {
		MinInstances int `yaml:"minInstances"`
		MaxInstances int `yaml:"maxInstances"`
	} `yaml:"scaling"`
	EnvVars []renderVar `yaml:"envVars"`
	Disk    *struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SizeGB    int    `yaml:"sizeGB"`
	} `yaml:"disk"`
	DockerfilePath string `yaml:"dockerfilePath"`
	DockerContext  string `yaml:"dockerContext"`
	DockerCommand  string `yaml:"dockerCommand"`
	Image          *struct {
		URL string `yaml:"url"`
	} `yaml:"image"`
	Schedule                string `yaml:"schedule"`
	RootDir                 string `yaml:"rootDir"`
	StaticPublishPath       string `yaml:"staticPublishPath"`
	MaxShutdownDelaySeconds int    `yaml:"maxShutdownDelaySeconds"`
	MaxmemoryPolicy         string `yaml:"maxmemoryPolicy"`
	// databases
	DatabaseName         string `yaml:"databaseName"`
	User                 string `yaml:"user"`
	PostgresMajorVersion any    `yaml:"postgresMajorVersion"`
	DiskSizeGB           int    `yaml:"diskSizeGB"`
}

// renderPlans are instance types: CPUs and memory in MB.
var renderPlans = map[string]struct {
	CPUs float64
	Mem  int
}{
	"free": {0.1, 512}, "starter": {0.5, 512}, "starter plus": {1, 1024}, "standard": {1, 2048},
	"standard plus": {1.5, 3072}, "pro": {2, 4096}, "pro plus": {4, 8192}, "pro max": {4, 16384}, "pro ultra": {8, 32768},
}

// renderRegions maps Render regions to the nearest Fly region.
var renderRegions = map[string]string{"oregon": "sjc", "ohio": "ord", "virginia": "iad", "frankfurt": "fra", "singapore": "sin"}

const renderDefaultPort = 10000

func importRender(path string, isDir bool, opts Options) (*Result, error) {
	if isDir {
		p, ok := findFile(path, "render.yaml", "render.yml")
		if !ok {
			return nil, inputErr(path, "pass render.yaml itself or the directory that holds it", "no render.yaml found")
		}
		path = p
	}
	data, err := readInput(path)
	if err != nil {
		return nil, err
	}
	return convertRender(path, data, opts)
}

type renderUnit struct {
	svc   renderService
	keys  []string
	db    bool
	app   string
	port  int
	index string
}

func convertRender(file string, data []byte, opts Options) (*Result, error) {
	var rf renderFile
	if err := yaml.Unmarshal(data, &rf); err != nil {
		return nil, inputErr(file, "fix the YAML: render.yaml has top-level services, databases and envVarGroups lists", "invalid render.yaml: %v", err)
	}
	var top map[string]any
	_ = yaml.Unmarshal(data, &top)
	rep := &Report{Format: "render", Source: file}
	for _, k := range sortedKeys(top) {
		switch k {
		case "services", "databases", "envVarGroups", "projects", "ungrouped":
		case "previews", "previewsEnabled", "previewsExpireAfterDays":
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Unsupported, Warning: "preview environments have no equivalent"})
		default:
			rep.Entries = append(rep.Entries, Entry{Key: k, Status: Unsupported, Warning: "unknown key; ignored"})
		}
	}
	services, databases, groups := rf.Services, rf.Databases, rf.EnvVarGroups
	for _, env := range append(projEnvs(rf.Projects), ptrEnv(rf.Ungrouped)...) {
		if opts.Environment != "" && env.Name != opts.Environment && env.Name != "" {
			continue
		}
		services = append(services, env.Services...)
		databases = append(databases, env.Databases...)
		groups = append(groups, env.EnvVarGroups...)
	}
	groupVars := map[string][]renderVar{}
	for _, g := range groups {
		groupVars[g.Name] = append(groupVars[g.Name], g.EnvVars...)
	}
	var units []*renderUnit
	decode := func(nodes []yaml.Node, db bool, list string) error {
		for i := range nodes {
			var s renderService
			if err := nodes[i].Decode(&s); err != nil {
				return inputErr(file, "check the field types against Render's Blueprint reference", "%s[%d]: %v", list, i, err)
			}
			var raw map[string]any
			_ = nodes[i].Decode(&raw)
			if s.Name == "" {
				return inputErr(file, "give every service and database a name", "%s[%d] (line %d) has no name", list, i, nodes[i].Line)
			}
			if s.Env != "" && s.Runtime == "" {
				s.Runtime = s.Env
			}
			if db {
				s.Type = "postgres"
			}
			units = append(units, &renderUnit{svc: s, keys: sortedKeys(raw), db: db || s.Type == "redis" || s.Type == "keyvalue", index: fmt.Sprintf("%s.%s", list, s.Name)})
		}
		return nil
	}
	if err := decode(services, false, "services"); err != nil {
		return nil, err
	}
	if err := decode(databases, true, "databases"); err != nil {
		return nil, err
	}
	res := &Result{Report: rep}
	if len(units) == 0 {
		rep.Notes = append(rep.Notes, "render.yaml defines no service or database")
		return res, nil
	}
	several := len(units) > 1
	byName := map[string]*renderUnit{}
	used := map[string]bool{}
	for _, u := range units {
		u.app = nameFor(opts, "", u.svc.Name, several)
		if opts.Name != "" && several {
			u.app = nameFor(opts, opts.Name, u.svc.Name, true)
		}
		for base, i := u.app, 2; used[u.app]; i++ {
			// A database may share its name with the service that uses it.
			if i == 2 && u.svc.Type == "postgres" {
				u.app = appName(base + "-db")
			} else {
				u.app = appName(fmt.Sprintf("%s-%d", base, i))
			}
		}
		used[u.app] = true
		u.port = renderDefaultPort
		for _, v := range u.svc.EnvVars {
			if v.Key == "PORT" && v.Value != nil {
				if n, err := strconv.Atoi(fmt.Sprint(v.Value)); err == nil && n > 0 && n < 65536 {
					u.port = n
				}
			}
		}
		switch {
		case u.svc.Type == "postgres":
			u.port = 5432
		case u.db:
			u.port = 6379
		}
		byName[u.svc.Name] = u
	}
	// users lists the apps that read each environment group.
	users := map[string][]string{}
	for _, u := range units {
		for _, v := range u.svc.EnvVars {
			if v.FromGroup != "" && (len(users[v.FromGroup]) == 0 || users[v.FromGroup][len(users[v.FromGroup])-1] != u.app) {
				users[v.FromGroup] = append(users[v.FromGroup], u.app)
			}
		}
	}
	for _, u := range units {
		o := opts
		if o.Region == "" {
			o.Region = renderRegions[u.svc.Region]
		}
		b := newBuilder(rep, o, u.app, u.index)
		convertRenderUnit(b, u, byName, groupVars, users, filepath.Dir(file))
		if u.svc.Runtime == "static" || u.svc.Type == "static" {
			continue
		}
		res.Apps = append(res.Apps, b.flush())
	}
	return res, nil
}

func projEnvs(ps []renderProject) []renderEnvironment {
	var out []renderEnvironment
	for _, p := range ps {
		out = append(out, p.Environments...)
	}
	return out
}

func ptrEnv(e *renderEnvironment) []renderEnvironment {
	if e == nil {
		return nil
	}
	return []renderEnvironment{*e}
}

func convertRenderUnit(b *builder, u *renderUnit, units map[string]*renderUnit, groups map[string][]renderVar, users map[string][]string, dir string) {
	s := u.svc
	k := func(key string) string { return u.index + "." + key }
	c := b.cfg()
	if s.Runtime == "static" || s.Type == "static" {
		b.none(u.index, "static site: serve the published directory (%s) from an image, e.g. nginx with [[statics]]; no app generated", s.StaticPublishPath)
		return
	}
	for _, key := range u.keys {
		kk := k(key)
		switch key {
		case "type":
			switch s.Type {
			case "web":
				b.mapped(kk, "[http_service]")
			case "pserv":
				b.approx(kk, "(no public service)", "private service: reachable at %s.internal:%d, no public port", b.app.Name, u.port)
			case "worker":
				b.mapped(kk, "(no service)")
			case "cron":
				b.approx(kk, "scheduled machine", "cron job: see next steps")
			case "redis", "keyvalue":
				b.approx(kk, "app "+b.app.Name, "Key Value (Redis) became a private Valkey app; or use a managed Redis")
			default:
				b.none(kk, "unknown service type %q", s.Type)
			}
		case "name":
			b.mapped(kk, "app")
		case "runtime", "env":
			renderBuild(b, kk, s)
		case "image", "dockerfilePath", "dockerContext", "registryCredential":
			// handled with runtime
			if s.Runtime == "" && key == "image" {
				renderBuild(b, kk, s)
			}
		case "buildCommand":
			if renderNative(s) {
				b.mapped(kk, "RUN in the generated Dockerfile")
			} else {
				b.none(kk, "Render runs buildCommand only for native runtimes; this service builds from a Dockerfile or an image, so %q is not run: put it in the Dockerfile if it is needed", s.BuildCommand)
			}
		case "startCommand", "dockerCommand":
			cmd, why := shellWrap(key2cmd(s, key))
			b.process("app", cmd)
			if why != "" {
				b.approx(kk, "[processes] app", "Render runs the command in a shell; it uses shell syntax (%s), so it runs as sh -c '...'", why)
			} else {
				b.mapped(kk, "[processes] app")
			}
		case "preDeployCommand", "releaseCommand":
			// releaseCommand is not a Render key, but files use it meaning this.
			raw := s.PreDeployCommand
			if key == "releaseCommand" {
				raw = s.ReleaseCommand
			}
			cmd, why := shellWrap(raw)
			b.release(kk, cmd)
			if why != "" {
				b.rep.Entries[len(b.rep.Entries)-1].Warning += "; wrapped in sh -c because it uses shell syntax: " + why
			}
		case "plan":
			p, ok := renderPlans[strings.ToLower(s.Plan)]
			if !ok {
				b.none(kk, "unknown plan %q: pick a size with `hangar scale vm`", s.Plan)
				continue
			}
			b.size(kk, p.CPUs, p.Mem, nil)
		case "region":
			if r, ok := renderRegions[s.Region]; ok {
				if b.opts.Region != "" && b.opts.Region != r {
					b.approx(kk, "primary_region", "--region %s overrides %s", b.opts.Region, s.Region)
				} else {
					b.approx(kk, "primary_region = "+r, "Render region %s mapped to the nearest region %s", s.Region, r)
				}
			} else {
				b.none(kk, "unknown region %q; pass --region", s.Region)
			}
		case "numInstances":
			b.count(kk, "", *s.NumInstances)
		case "scaling":
			if sc := s.Scaling; sc != nil {
				b.count(kk, "", sc.MaxInstances)
				if c.HTTPService != nil || s.Type == "web" {
					b.httpService(u.port, nil).MinMachinesRunning = intPtr(sc.MinInstances)
				}
				last := &b.rep.Entries[len(b.rep.Entries)-1]
				last.Warning = fmt.Sprintf("autoscaling %d..%d on CPU/memory became %d machines with autostop/autostart and min_machines_running = %d (scaled by traffic, not by CPU)", sc.MinInstances, sc.MaxInstances, sc.MaxInstances, sc.MinInstances)
			}
		case "healthCheckPath":
			// after the service exists, below
		case "envVars":
			renderEnv(b, kk, s.EnvVars, units, groups, users, nil)
		case "disk":
			if d := s.Disk; d != nil {
				b.volume(kk, orStr(d.Name, s.Name+"_data"), d.MountPath, d.SizeGB, nil)
			}
		case "schedule":
			// after the build is known, below
		case "maxShutdownDelaySeconds":
			c.KillTimeout = fmt.Sprintf("%ds", s.MaxShutdownDelaySeconds)
			b.mapped(kk, "kill_timeout")
		case "rootDir":
			b.approx(kk, "", "deploy from %s: the build context is that directory", s.RootDir)
		case "repo", "branch", "autoDeploy", "autoDeployTrigger", "buildFilter", "pullRequestPreviewsEnabled", "previews", "previewPlan":
			b.none(kk, "deploys are started by `hangar deploy` (e.g. from CI), not by Git pushes")
		case "domains":
			b.none(kk, "add each domain with `hangar certs add DOMAIN -a %s`", b.app.Name)
		case "headers", "routes":
			b.none(kk, "response headers and redirects/rewrites have no fly.toml equivalent: set them in the app")
		case "ipAllowList":
			b.none(kk, "IP allow lists have no equivalent: the app is private unless it has a service")
		case "maxmemoryPolicy":
			b.mapped(kk, "[processes] app: valkey-server --maxmemory-policy "+s.MaxmemoryPolicy)
		case "databaseName", "user", "postgresMajorVersion":
			// handled for databases below
		case "diskSizeGB":
		case "readReplicas", "highAvailability", "ipAllowlist":
			b.none(kk, "managed database feature with no equivalent in a self-run database app")
		case "initialDeployHook":
			b.none(kk, "runs once after the first deploy: run it by hand with `hangar ssh console`")
		default:
			b.none(kk, "unknown key; ignored")
		}
	}
	if renderNative(s) {
		src := dir
		if s.RootDir != "" {
			src = filepath.Join(dir, s.RootDir)
		}
		lang := srcLang{Name: s.Runtime, Evidence: "runtime: " + s.Runtime}
		if lang.Name == "node" || lang.Name == "python" || lang.Name == "ruby" || lang.Name == "go" || lang.Name == "elixir" {
			if d := detectLang(src, nil, nil); d.Name == lang.Name {
				lang.Evidence += " and " + d.Evidence
			}
		}
		b.fromSource(k(orStr(firstKey(u.keys, "runtime", "env"), "runtime")), src, "Render", lang, s.BuildCommand, u.port)
	}
	switch {
	case s.Type == "postgres":
		ver := "16"
		if s.PostgresMajorVersion != nil {
			ver = fmt.Sprint(s.PostgresMajorVersion)
		}
		c.Build = &FlyBuild{Image: "postgres:" + ver}
		b.approx(u.index, "[build] image = postgres:"+ver, "Render Postgres is managed; this app runs the postgres image with a volume (or use a managed Postgres)")
		if s.DatabaseName != "" {
			b.env(k("databaseName"), "POSTGRES_DB", s.DatabaseName)
		}
		if s.User != "" {
			b.env(k("user"), "POSTGRES_USER", s.User)
		}
		b.secret(u.index+" password", "POSTGRES_PASSWORD", "", "Render generated the password")
		b.databaseApp(u.index, "postgres", 0, false)
		if s.DiskSizeGB > 0 && len(c.Mounts) > 0 {
			c.Mounts[0].InitialSize = fmt.Sprintf("%dgb", s.DiskSizeGB)
		}
	case s.Type == "redis" || s.Type == "keyvalue":
		c.Build = &FlyBuild{Image: "valkey/valkey:8"}
		args := []string{"valkey-server"}
		if !strings.EqualFold(s.Plan, "free") {
			// Paid Key Value instances persist to disk (journal and
			// snapshots); free ones are memory only.
			b.persist = fmt.Sprintf("Render persists Key Value instances of paid plans (here %s) to disk", orStr(s.Plan, "starter, the default"))
			args = append(args, "--appendonly", "yes")
			b.approx(u.index+" (persistence)", "[processes] app: valkey-server --appendonly yes", "journal (append-only file) on, as on Render's paid Key Value instances")
		}
		if s.MaxmemoryPolicy != "" {
			args = append(args, "--maxmemory-policy", s.MaxmemoryPolicy)
		}
		if len(args) > 1 {
			b.process("app", shellJoin(args))
		}
		b.databaseApp(u.index, "valkey", 0, false)
	case s.Type == "web":
		b.httpService(u.port, processesOf(c))
		if !strings.EqualFold(s.Plan, "free") && s.Scaling == nil {
			// Paid Render services never spin down; free ones do.
			b.alwaysOn = true
			b.alwaysOnWhy = fmt.Sprintf("Render keeps instances of paid plans (here %s) running; only free services spin down: min_machines_running equals the instance count so autostop never stops them", orStr(s.Plan, "starter, the default"))
		}
		b.portEnv(k("(PORT)"), u.port, "Render")
		if s.HealthCheckPath != "" {
			b.httpCheck(k("healthCheckPath"), probe{Port: u.port, Path: s.HealthCheckPath, Method: "GET"}, checkTimes{Interval: 15e9, Timeout: 5e9, Grace: 10e9}, nil)
		}
	case s.Type == "pserv":
		b.portEnv(k("(PORT)"), u.port, "Render")
		if s.HealthCheckPath != "" {
			b.httpCheck(k("healthCheckPath"), probe{Port: u.port, Path: s.HealthCheckPath, Method: "GET"}, checkTimes{Interval: 15e9, Timeout: 5e9, Grace: 10e9}, nil)
		}
	case s.Type == "cron":
		cmd := c.Processes["app"]
		b.cron(k("schedule"), s.Schedule, cmd)
	}
	if s.HealthCheckPath != "" && s.Type != "web" && s.Type != "pserv" {
		b.none(k("healthCheckPath"), "health check path on a service without a port ignored")
	}
	if c.HTTPService != nil && len(c.Processes) > 0 {
		c.HTTPService.Processes = []string{"app"}
	}
}

// firstKey returns the first of names that keys holds.
func firstKey(keys []string, names ...string) string {
	for _, n := range names {
		for _, k := range keys {
			if k == n {
				return n
			}
		}
	}
	return ""
}

func key2cmd(s renderService, key string) string {
	if key == "dockerCommand" {
		return s.DockerCommand
	}
	return s.StartCommand
}

func processesOf(c *FlyConfig) []string {
	if len(c.Processes) > 0 {
		return []string{"app"}
	}
	return nil
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func renderBuild(b *builder, key string, s renderService) {
	c := b.cfg()
	switch s.Runtime {
	case "docker":
		// Both paths are relative to rootDir (the repository root without it).
		df := filepath.Join(s.RootDir, orStr(s.DockerfilePath, "./Dockerfile"))
		ctx := filepath.Join(s.RootDir, orStr(s.DockerContext, "."))
		c.Build = &FlyBuild{Dockerfile: filepath.ToSlash(filepath.Clean(df))}
		switch {
		case b.buildIn(ctx, df):
			b.mapped(key, "fly.toml written in "+filepath.ToSlash(filepath.Clean(ctx))+"/ (the build context)")
		case filepath.Clean(ctx) != ".":
			b.approx(key, "[build] dockerfile", "build context %s is outside the repository: deploy with that directory as the build context", ctx)
		default:
			b.mapped(key, "[build] dockerfile")
		}
	case "image", "":
		if s.Image != nil && s.Image.URL != "" {
			c.Build = &FlyBuild{Image: s.Image.URL}
			b.mapped(key, "[build] image")
		} else if s.Type != "postgres" && s.Type != "redis" && s.Type != "keyvalue" {
			b.none(key, "no image or runtime: set [build] by hand")
		}
	default:
		// Native runtimes are built after the loop (renderNative), once
		// the start command is known.
	}
}

// renderNative says whether a service is built from source by one of
// Render's native runtimes (node, python, ruby, go, elixir, rust).
func renderNative(s renderService) bool {
	switch s.Runtime {
	case "docker", "image", "", "static":
		return false
	}
	return s.Type != "postgres" && s.Type != "redis" && s.Type != "keyvalue"
}

// renderEnv maps envVars; inGroups guards against groups that include
// themselves.
func renderEnv(b *builder, key string, vars []renderVar, units map[string]*renderUnit, groups map[string][]renderVar, users map[string][]string, inGroups map[string]bool) {
	for i, v := range vars {
		kk := fmt.Sprintf("%s.%s", key, orStr(v.Key, strconv.Itoa(i)))
		switch {
		case v.FromGroup != "":
			g, ok := groups[v.FromGroup]
			if !ok {
				b.none(kk, "environment group %s is not defined in this file: add its variables with `hangar secrets set`", v.FromGroup)
				continue
			}
			if inGroups[v.FromGroup] {
				b.none(kk, "environment group %s includes itself; ignored", v.FromGroup)
				continue
			}
			nested := map[string]bool{v.FromGroup: true}
			for k := range inGroups {
				nested[k] = true
			}
			renderEnv(b, key+".fromGroup("+v.FromGroup+")", g, units, groups, users, nested)
		case v.Key == "":
			b.none(kk, "env var without a key ignored")
		case v.GenerateValue && len(inGroups) > 0:
			// Render generates a group's value once: every app that reads
			// the group sees the same one (a shared SECRET_KEY_BASE).
			var apps []string
			for g := range inGroups {
				apps = append(apps, users[g]...)
			}
			apps = uniqueSorted(apps)
			b.secret(kk, v.Key, "", fmt.Sprintf("Render generated this value once for the environment group and every app that reads the group shares it: generate one value (e.g. `openssl rand -hex 32`) and set the same value in every app (%s)", strings.Join(apps, ", ")))
		case v.GenerateValue:
			b.secret(kk, v.Key, "", "Render generated this value; generate one (e.g. `openssl rand -hex 32`)")
		case v.Sync != nil && !*v.Sync:
			b.secret(kk, v.Key, "", "set in the Render dashboard (sync: false)")
		case v.FromDatabase != nil:
			db, ok := units[v.FromDatabase.Name]
			if !ok {
				b.none(kk, "database %s is not defined in this file", v.FromDatabase.Name)
				continue
			}
			renderRef(b, kk, v.Key, db, v.FromDatabase.Property, "")
		case v.FromService != nil:
			svc, ok := units[v.FromService.Name]
			if !ok {
				b.none(kk, "service %s is not defined in this file", v.FromService.Name)
				continue
			}
			renderRef(b, kk, v.Key, svc, v.FromService.Property, v.FromService.EnvVarKey)
		default:
			val := ""
			if v.Value != nil {
				val = fmt.Sprint(v.Value)
			}
			if v.Key == "PORT" {
				b.env(kk, v.Key, val)
				continue
			}
			b.env(kk, v.Key, val)
		}
	}
}

// renderRef resolves fromDatabase / fromService to private addresses.
func renderRef(b *builder, key, name string, u *renderUnit, prop, envKey string) {
	host := u.app + ".internal"
	switch {
	case envKey != "":
		for _, v := range u.svc.EnvVars {
			if v.Key == envKey && v.Value != nil && !v.GenerateValue {
				b.env(key, name, fmt.Sprint(v.Value))
				return
			}
		}
		b.secret(key, name, "", fmt.Sprintf("copy of %s from app %s", envKey, u.app))
	case prop == "host":
		b.env(key, name, host)
		b.rep.Entries[len(b.rep.Entries)-1].Status = Approximated
		b.rep.Entries[len(b.rep.Entries)-1].Warning = "points at the private address of app " + u.app
	case prop == "port":
		b.env(key, name, strconv.Itoa(u.port))
	case prop == "hostport":
		b.env(key, name, fmt.Sprintf("%s:%d", host, u.port))
		b.rep.Entries[len(b.rep.Entries)-1].Status = Approximated
		b.rep.Entries[len(b.rep.Entries)-1].Warning = "points at the private address of app " + u.app
	case prop == "user":
		b.env(key, name, orStr(u.svc.User, "postgres"))
	case prop == "database":
		b.env(key, name, orStr(u.svc.DatabaseName, "postgres"))
	case prop == "password":
		b.secret(key, name, "", "the password of app "+u.app+"'s database (its POSTGRES_PASSWORD)")
	case prop == "connectionString" && u.svc.Type == "postgres":
		b.secret(key, name, "", fmt.Sprintf("set it to postgres://%s:PASSWORD@%s:5432/%s", orStr(u.svc.User, "postgres"), host, orStr(u.svc.DatabaseName, "postgres")))
	case prop == "connectionString":
		b.env(key, name, fmt.Sprintf("redis://%s:6379", host))
		b.rep.Entries[len(b.rep.Entries)-1].Status = Approximated
		b.rep.Entries[len(b.rep.Entries)-1].Warning = "points at the private address of app " + u.app
	default:
		b.none(key, "property %q of %s has no equivalent", prop, u.svc.Name)
	}
}
