package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// herokuApp is the part of app.json the importer reads; every other key
// is reported.
type herokuApp struct {
	Name       string                     `json:"name"`
	Env        map[string]json.RawMessage `json:"env"`
	Formation  map[string]herokuFormation `json:"formation"`
	Addons     []json.RawMessage          `json:"addons"`
	Buildpacks []struct {
		URL string `json:"url"`
	} `json:"buildpacks"`
	Scripts      map[string]json.RawMessage `json:"scripts"`
	Stack        string                     `json:"stack"`
	Environments map[string]json.RawMessage `json:"environments"`
}

type herokuFormation struct {
	Quantity *int   `json:"quantity"`
	Size     string `json:"size"`
}

type herokuEnv struct {
	Description string `json:"description"`
	Value       any    `json:"value"`
	Required    *bool  `json:"required"`
	Generator   string `json:"generator"`
}

// herokuSizes are dyno sizes: CPUs (approximate) and memory in MB.
var herokuSizes = map[string]struct {
	CPUs float64
	Mem  int
}{
	"free": {1, 512}, "eco": {1, 512}, "hobby": {1, 512}, "basic": {1, 512},
	"standard-1x": {1, 512}, "standard-2x": {1, 1024},
	"performance-m": {2, 2560}, "performance-l": {8, 14336}, "performance-l-ram": {4, 30720},
	"performance-xl": {8, 63488}, "performance-2xl": {16, 129024},
	"private-s": {1, 1024}, "private-m": {2, 2560}, "private-l": {8, 14336},
	"shield-s": {1, 1024}, "shield-m": {2, 2560}, "shield-l": {8, 14336},
}

// herokuSleeps are the dyno sizes that sleep when idle.
var herokuSleeps = map[string]bool{"eco": true, "free": true}

var procfileLine = regexp.MustCompile(`^([A-Za-z0-9_-]+):\s*(.*)$`)

type procEntry struct{ name, cmd string }

// parseProcfile reads a Procfile; malformed lines are returned as problems.
func parseProcfile(data []byte) (procs []procEntry, bad []string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := procfileLine.FindStringSubmatch(line)
		if m == nil || strings.TrimSpace(m[2]) == "" {
			bad = append(bad, fmt.Sprintf("line %d: %q is not `type: command`", n, line))
			continue
		}
		if seen[m[1]] {
			bad = append(bad, fmt.Sprintf("line %d: process type %s repeats; the last one wins", n, m[1]))
			for i := range procs {
				if procs[i].name == m[1] {
					procs[i].cmd = strings.TrimSpace(m[2])
				}
			}
			continue
		}
		seen[m[1]] = true
		procs = append(procs, procEntry{m[1], strings.TrimSpace(m[2])})
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, fmt.Sprintf("line %d: %v", n+1, err))
	}
	return procs, bad
}

func importHeroku(path string, isDir bool, opts Options) (*Result, error) {
	dir := path
	if !isDir {
		dir = filepath.Dir(path)
	}
	in := herokuInput{dir: dir}
	if p, ok := findFile(dir, "Procfile"); ok {
		b, err := readInput(p)
		if err != nil {
			return nil, err
		}
		in.procfile, in.procfileName = b, p
	}
	if p, ok := findFile(dir, "app.json"); ok {
		b, err := readInput(p)
		if err != nil {
			return nil, err
		}
		in.appJSON, in.appJSONName = b, p
	}
	if p, ok := findFile(dir, "heroku.yml"); ok {
		b, err := readInput(p)
		if err != nil {
			return nil, err
		}
		in.herokuYML, in.herokuYMLName = b, p
	}
	_, in.hasDockerfile = findFile(dir, "Dockerfile")
	if in.procfile == nil && in.appJSON == nil && in.herokuYML == nil {
		return nil, inputErr(path, "pass the directory that holds the Heroku app's Procfile and/or app.json", "no Procfile, app.json or heroku.yml found in %s", dir)
	}
	return convertHeroku(in, opts)
}

type herokuInput struct {
	dir                                      string
	procfile, appJSON, herokuYML             []byte
	procfileName, appJSONName, herokuYMLName string
	hasDockerfile                            bool
}

type herokuYML struct {
	Build struct {
		Docker map[string]any `yaml:"docker"`
		Config map[string]any `yaml:"config"`
	} `yaml:"build"`
	Run     map[string]any `yaml:"run"`
	Release struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
	} `yaml:"release"`
	Setup map[string]any `yaml:"setup"`
}

func convertHeroku(in herokuInput, opts Options) (*Result, error) {
	src := in.procfileName
	if src == "" {
		src = in.appJSONName
	}
	if src == "" {
		src = in.herokuYMLName
	}
	rep := &Report{Format: "heroku", Source: src}
	var app herokuApp
	var badKeys map[string]string
	raw := map[string]json.RawMessage{}
	if in.appJSON != nil {
		if err := json.Unmarshal(in.appJSON, &raw); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, inputErr(in.appJSONName, "app.json holds one JSON object with name, env, formation, addons, ...", "app.json must be one JSON object, not a JSON %s", te.Value)
			}
			return nil, inputErr(in.appJSONName, "fix the JSON syntax (app.json must be one JSON object)", "invalid app.json: %v", jsonErr(in.appJSON, err))
		}
		badKeys = decodeHerokuApp(raw, &app)
	}
	var procs []procEntry
	if in.procfile != nil {
		var bad []string
		procs, bad = parseProcfile(in.procfile)
		for _, b := range bad {
			rep.Entries = append(rep.Entries, Entry{Key: "Procfile", Status: Unsupported, Warning: b + "; skipped"})
		}
	}
	var hy herokuYML
	if in.herokuYML != nil {
		if err := yaml.Unmarshal(in.herokuYML, &hy); err != nil {
			return nil, inputErr(in.herokuYMLName, "fix the YAML so that it has build, run and release sections", "invalid heroku.yml: %v", err)
		}
		if len(procs) == 0 {
			for _, k := range sortedKeys(hy.Run) {
				cmd := ""
				switch v := hy.Run[k].(type) {
				case string:
					cmd = v
				case map[string]any:
					if c, ok := v["command"].([]any); ok {
						var parts []string
						for _, x := range c {
							parts = append(parts, fmt.Sprint(x))
						}
						cmd = strings.Join(parts, " ")
					}
				}
				if cmd != "" {
					procs = append(procs, procEntry{k, cmd})
				}
			}
		}
	}
	name := app.Name
	if name == "" {
		name = filepath.Base(mustAbs(in.dir))
	}
	b := newBuilder(rep, opts, nameFor(opts, name, "", false), "heroku app")
	var extra herokuExtras
	c := b.cfg()
	buildpacks := false
	// Build.
	switch {
	case in.herokuYML != nil && len(hy.Build.Docker) > 0:
		df := "Dockerfile"
		if v, ok := hy.Build.Docker["web"].(string); ok {
			df = v
		} else if v, ok := hy.Build.Docker["web"].(map[string]any); ok {
			if s, ok := v["dockerfile"].(string); ok {
				df = s
			}
		}
		c.Build = &FlyBuild{Dockerfile: df}
		b.mapped("heroku.yml build.docker", "[build] dockerfile")
		if len(hy.Build.Docker) > 1 {
			b.none("heroku.yml build.docker", "one image per app: other process types run the web image")
		}
		if len(hy.Build.Config) > 0 {
			c.Build.Args = map[string]string{}
			for _, k := range sortedKeys(hy.Build.Config) {
				c.Build.Args[k] = fmt.Sprint(hy.Build.Config[k])
			}
			b.mapped("heroku.yml build.config", "[build.args]")
		}
	case in.hasDockerfile:
		c.Build = &FlyBuild{Dockerfile: "Dockerfile"}
		b.approx("(build)", "[build] dockerfile", "the repository has a Dockerfile, used instead of buildpacks")
	default:
		buildpacks = true // after the processes, which builtin go rewrites
	}
	if hy.Release.Command != nil {
		b.release("heroku.yml release", strings.Join(hy.Release.Command, " "))
	}
	// Processes.
	const port = 8080
	var web bool
	webCmd := ""
	for _, p := range procs {
		if p.name == "web" {
			webCmd = strings.Join(strings.Fields(p.cmd), " ")
		}
	}
	for _, p := range procs {
		key := "Procfile " + p.name
		if p.name != "web" && p.name != "release" && webCmd != "" && strings.Join(strings.Fields(p.cmd), " ") == webCmd {
			b.none(key, "runs the same command as web: a second copy of the web server that no service routes to; not made a process group. For more web machines run `hangar scale count web=N -a %s`", b.app.Name)
			continue
		}
		if why := oneShot(p.name, p.cmd); why != "" && p.name != "release" {
			cmd, _ := shellCommand(p.cmd)
			b.none(key, "runs once and exits (%s): as a process group it would be restarted over and over. Run it when needed with `hangar machine run IMAGE --restart no -a %s -- %s`, or chain it into [deploy] release_command to run it on every deploy", why, b.app.Name, cmd)
			continue
		}
		if p.name == "release" {
			cmd, why := shellWrap(p.cmd)
			b.release(key, cmd)
			if why != "" {
				b.rep.Entries[len(b.rep.Entries)-1].Warning += "; wrapped in sh -c because it uses shell syntax: " + why
			}
			continue
		}
		cmd, why := shellWrap(p.cmd)
		b.process(p.name, cmd)
		if why != "" {
			b.approx(key, "[processes] "+p.name, "Heroku runs Procfile commands in a shell; this one uses shell syntax (%s), so it runs as sh -c '...'", why)
		} else {
			b.mapped(key, "[processes] "+p.name)
		}
		if p.name == "web" {
			web = true
		}
	}
	if buildpacks {
		var bps, cmds []string
		for _, bp := range app.Buildpacks {
			bps = append(bps, bp.URL)
		}
		for _, p := range procs {
			cmds = append(cmds, p.cmd)
		}
		key := "(build)"
		if len(bps) > 0 {
			key = "app.json buildpacks"
		}
		b.fromSource(key, in.dir, "Heroku", detectLang(in.dir, bps, cmds), "", port)
	}
	if web {
		b.httpService(port, []string{"web"})
	} else if len(procs) > 0 {
		rep.Notes = append(rep.Notes, "no web process: the app serves no HTTP")
	}
	// app.json keys.
	for _, k := range sortedKeys(raw) {
		if why, bad := badKeys[k]; bad {
			b.none("app.json "+k, "does not match Heroku's app.json schema (%s); ignored", why)
			continue
		}
		switch k {
		case "name":
			b.mapped("app.json name", "app")
		case "env":
			herokuEnvVars(b, app.Env)
		case "formation":
			for _, pt := range sortedKeys(app.Formation) {
				f := app.Formation[pt]
				group := pt
				if _, ok := c.Processes[pt]; !ok && len(c.Processes) > 0 {
					b.none("app.json formation."+pt, "no process type %s in the Procfile", pt)
					continue
				}
				if f.Quantity != nil {
					b.count("app.json formation."+pt+".quantity", group, *f.Quantity)
				}
				if f.Size != "" {
					sz, ok := herokuSizes[strings.ToLower(f.Size)]
					if !ok {
						b.none("app.json formation."+pt+".size", "unknown dyno size %q: pick a size with `hangar scale vm`", f.Size)
						continue
					}
					b.size("app.json formation."+pt+".size", sz.CPUs, sz.Mem, []string{group})
				}
			}
		case "addons":
			herokuAddons(b, app.Addons, rep, opts, &extra)
		case "buildpacks", "stack":
			if k == "stack" {
				b.none("app.json stack", "stack %q has no equivalent: the image decides the OS", app.Stack)
			}
		case "scripts":
			for _, s := range sortedKeys(app.Scripts) {
				var cmd string
				_ = json.Unmarshal(app.Scripts[s], &cmd)
				switch s {
				case "postdeploy":
					b.none("app.json scripts.postdeploy", "runs once after the app is created: run %q by hand with `hangar ssh console -a %s`", cmd, b.app.Name)
				default:
					b.none("app.json scripts."+s, "review-app hook; no equivalent")
				}
			}
		case "environments":
			b.none("app.json environments", "CI and review-app environments have no equivalent")
		case "description", "keywords", "logo", "repository", "website", "success_url", "image":
			b.none("app.json "+k, "metadata; ignored")
		default:
			b.none("app.json "+k, "unknown key; ignored")
		}
	}
	if web {
		if f, ok := app.Formation["web"]; !ok || !herokuSleeps[strings.ToLower(f.Size)] {
			// Web dynos above eco never sleep.
			b.alwaysOn = true
			b.alwaysOnWhy = "Heroku web dynos (other than eco/free) never sleep: min_machines_running equals the web quantity so autostop never stops them"
		}
		// After app.json's env, so that a PORT there cannot contradict internal_port.
		b.portEnv("Procfile web ($PORT)", port, "Heroku")
	}
	res := &Result{Report: rep}
	res.Apps = append(res.Apps, b.flush())
	res.Apps = append(res.Apps, extra.apps...)
	return res, nil
}

// decodeHerokuApp decodes app.json key by key, so that one key of an
// unexpected shape is reported instead of failing the import. It returns
// the keys it could not read, with why.
func decodeHerokuApp(raw map[string]json.RawMessage, app *herokuApp) map[string]string {
	bad := map[string]string{}
	dec := func(key string, v any) {
		if r, ok := raw[key]; ok && string(r) != "null" {
			if err := json.Unmarshal(r, v); err != nil {
				bad[key] = err.Error()
			}
		}
	}
	dec("name", &app.Name)
	dec("env", &app.Env)
	dec("addons", &app.Addons)
	dec("buildpacks", &app.Buildpacks)
	dec("scripts", &app.Scripts)
	dec("stack", &app.Stack)
	dec("environments", &app.Environments)
	if r, ok := raw["formation"]; ok && string(r) != "null" {
		if err := json.Unmarshal(r, &app.Formation); err != nil {
			// The early app.json form: a list of {process, quantity, size}.
			var list []struct {
				Process  string `json:"process"`
				Quantity *int   `json:"quantity"`
				Size     string `json:"size"`
			}
			if json.Unmarshal(r, &list) != nil {
				bad["formation"] = err.Error()
			} else {
				app.Formation = map[string]herokuFormation{}
				for _, f := range list {
					if f.Process != "" {
						app.Formation[f.Process] = herokuFormation{Quantity: f.Quantity, Size: f.Size}
					}
				}
			}
		}
	}
	return bad
}

// herokuExtras carries database apps made for add-ons.
type herokuExtras struct{ apps []*App }

func herokuEnvVars(b *builder, env map[string]json.RawMessage) {
	for _, n := range sortedKeys(env) {
		key := "app.json env." + n
		var s string
		if json.Unmarshal(env[n], &s) == nil {
			b.env(key, n, s)
			continue
		}
		var e herokuEnv
		if err := json.Unmarshal(env[n], &e); err != nil {
			b.none(key, "value is neither a string nor an object: %v", err)
			continue
		}
		val := ""
		if e.Value != nil {
			val = fmt.Sprint(e.Value)
		}
		switch {
		case e.Generator == "secret":
			b.secret(key, n, "", "Heroku generated this value; generate one (e.g. `openssl rand -hex 32`)")
		case e.Value == nil || (val == "" && (e.Required == nil || *e.Required)):
			// Heroku asks for a required variable when the app is created:
			// a value per deployment, often a credential (MONGODB_URI).
			why := "no default value in app.json"
			if e.Required == nil || *e.Required {
				why = "required and set per app on Heroku"
			}
			b.secret(key, n, "", why)
		default:
			b.env(key, n, val)
		}
	}
}

func herokuAddons(b *builder, addons []json.RawMessage, rep *Report, opts Options, extra *herokuExtras) {
	for i, a := range addons {
		key := fmt.Sprintf("app.json addons[%d]", i)
		var plan, as string
		if json.Unmarshal(a, &plan) != nil {
			var o struct {
				Plan string `json:"plan"`
				As   string `json:"as"`
			}
			if err := json.Unmarshal(a, &o); err != nil {
				b.none(key, "add-on is neither a string nor an object")
				continue
			}
			plan, as = o.Plan, o.As
		}
		svc := strings.SplitN(plan, ":", 2)[0]
		key += " " + plan
		switch svc {
		case "heroku-postgresql":
			envName := "DATABASE_URL"
			if as != "" {
				envName = strings.ToUpper(as) + "_URL"
			}
			db := addonDatabase(b, rep, opts, "postgres", "postgres:16", extra)
			b.secret(key, envName, "", fmt.Sprintf("Heroku Postgres became app %s (postgres:16 with a volume; or use a managed Postgres); set %s=postgres://postgres:PASSWORD@%s.internal:5432/postgres", db, envName, db))
		case "heroku-redis", "rediscloud", "redistogo", "upstash-redis":
			envName := "REDIS_URL"
			if as != "" {
				envName = strings.ToUpper(as) + "_URL"
			}
			db := addonDatabase(b, rep, opts, "redis", "redis:7", extra)
			b.secret(key, envName, "", fmt.Sprintf("Redis add-on became app %s (or use a managed Redis); set %s=redis://%s.internal:6379", db, envName, db))
		case "scheduler":
			b.none(key, "Heroku Scheduler jobs live in the dashboard, not in app.json: recreate each as `hangar machine run IMAGE --schedule hourly|daily|weekly|monthly -- COMMAND`")
		default:
			b.none(key, "add-on %s has no equivalent: sign up with the provider directly and set its config vars as secrets", svc)
		}
	}
}

// addonDatabase creates (once per kind) a private database app for an
// add-on and returns its name.
func addonDatabase(b *builder, rep *Report, opts Options, kind, image string, extra *herokuExtras) string {
	name := appName(b.app.Name + "-" + kind)
	for _, a := range extra.apps {
		if a.Name == name {
			return name
		}
	}
	o := opts
	o.Name = ""
	db := newBuilder(rep, o, name, "add-on "+kind)
	db.cfg().Build = &FlyBuild{Image: image}
	db.mapped("(add-on "+kind+")", "[build] image = "+image)
	if kind == "postgres" {
		db.secret("(add-on postgres) POSTGRES_PASSWORD", "POSTGRES_PASSWORD", "", "the database's superuser password")
	}
	db.databaseApp("(add-on "+kind+")", kind, 0, false)
	extra.apps = append(extra.apps, db.flush())
	return name
}

// jsonErr adds line:column to a JSON syntax error.
func jsonErr(data []byte, err error) error {
	var off int64
	switch e := err.(type) {
	case *json.SyntaxError:
		off = e.Offset
	case *json.UnmarshalTypeError:
		off = e.Offset
	default:
		return err
	}
	line, col := 1, 1
	for i := int64(0); i < off-1 && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// oneShotNameRE names process types that run a task and exit.
var oneShotNameRE = regexp.MustCompile(`(?i)^(migrate|migrations?|db_?migrate|setup|seed|seeds|bootstrap|init|postdeploy|post_deploy|predeploy|pre_deploy|build|assets|compile|collectstatic|prewarm|warm(up|er)?|(cache_?)?warm(up|er|_?cache)?|[a-z]*_warm(up|er)?|once|oneoff|one_off)$`)

// daemonWords mark a task runner invocation that keeps running (a queue
// worker, a server, a scheduler loop).
var daemonWords = []string{"work", "worker", "server", "serve", "listen", "start", "run", "daemon", "poll", "consume", "scheduler", "clock", "cron", "watch", "sidekiq", "resque", "sneakers", "que", "good_job", "solid_queue", "jobs", "loop", "forever"}

// djangoDaemons are manage.py commands that keep running.
var djangoDaemons = map[string]bool{"runserver": true, "rqworker": true, "rqscheduler": true, "celery": true, "qcluster": true, "process_tasks": true, "run_huey": true, "runworker": true, "daphne": true, "runserver_plus": true, "worker": true, "consume": true}

// oneShot says why a Procfile entry is a task that runs once and exits (a
// migration, a cache warmer, an asset build) rather than a process that
// keeps running, or "" when it keeps running. Procfile entries are meant to
// run forever; these were put there to be run by hand with `heroku run`.
func oneShot(name, cmd string) string {
	if oneShotNameRE.MatchString(name) {
		return fmt.Sprintf("the process type %q names a task", name)
	}
	words, err := shellWords(cmd)
	if err != nil {
		return ""
	}
	for len(words) > 0 && assignmentRE.MatchString(words[0]) {
		words = words[1:]
	}
	if len(words) >= 2 && words[0] == "bundle" && words[1] == "exec" {
		words = words[2:]
	}
	if len(words) < 2 {
		return ""
	}
	prog, arg := path.Base(words[0]), words[1]
	daemon := func(task string) bool {
		t := strings.ToLower(task)
		for _, w := range daemonWords {
			if strings.Contains(t, w) {
				return true
			}
		}
		return false
	}
	switch {
	case (prog == "rake" || prog == "rails") && arg == "runner":
		return "a `rails runner` script"
	case prog == "rake" && !strings.HasPrefix(arg, "-") && !daemon(arg):
		return fmt.Sprintf("the rake task %s", arg)
	case prog == "rails" && strings.Contains(arg, ":") && !daemon(arg):
		return fmt.Sprintf("the rails task %s", arg)
	case (prog == "python" || prog == "python3") && len(words) >= 3 && path.Base(words[1]) == "manage.py" && !djangoDaemons[words[2]] && !daemon(words[2]):
		return fmt.Sprintf("the Django command %s", words[2])
	case (prog == "npm" || prog == "yarn" || prog == "pnpm") && (arg == "run" && len(words) >= 3 && oneShotNameRE.MatchString(words[2]) || oneShotNameRE.MatchString(arg)):
		return fmt.Sprintf("the package script %s", words[len(words)-1])
	case (prog == "flask" && arg == "db") || prog == "alembic" || (prog == "mix" && (arg == "ecto.migrate" || arg == "ecto.setup")):
		return "a database migration"
	}
	return ""
}
