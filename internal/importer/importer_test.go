package importer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseExecCheck(t *testing.T) {
	env := map[string]string{"PORT": "4000"}
	cases := []struct {
		cmd        []string
		port       int
		path       string
		method     string
		approx     bool
		wantErrSub string
	}{
		{cmd: []string{"CMD-SHELL", "curl -f http://localhost:8000/health || exit 1"}, port: 8000, path: "/health", method: "GET"},
		{cmd: []string{"CMD", "curl", "--fail", "http://127.0.0.1/"}, port: 80, path: "/", method: "GET"},
		{cmd: []string{"CMD-SHELL", "wget -q --spider http://localhost:3000/ping"}, port: 3000, path: "/ping", method: "GET"},
		{cmd: []string{"CMD-SHELL", "wget --no-verbose --tries=1 --spider http://0.0.0.0:9000/healthz?full=1 || exit 1"}, port: 9000, path: "/healthz?full=1", method: "GET"},
		{cmd: []string{"CMD-SHELL", "curl -s --noproxy localhost localhost:3000/health | grep -q 'OK' || exit 1"}, port: 3000, path: "/health", method: "GET", approx: true},
		{cmd: []string{"CMD-SHELL", "curl -fsS -X HEAD http://localhost:${PORT}/up"}, port: 4000, path: "/up", method: "HEAD"},
		{cmd: []string{"CMD-SHELL", "curl -f https://localhost/secure"}, port: 443, path: "/secure", method: "GET"},
		{cmd: []string{"CMD", "sh", "-c", "curl -f http://localhost:5000/ && echo ok"}, port: 5000, path: "/", method: "GET"},
		{cmd: []string{"/usr/bin/curl", "-f", "http://localhost:81/x"}, port: 81, path: "/x", method: "GET"},
		{cmd: []string{"CMD-SHELL", "python -c \"import urllib.request; urllib.request.urlopen('http://localhost:8080/health')\""}, port: 8080, path: "/health", approx: true},
		{cmd: []string{"CMD", "pg_isready", "-U", "postgres"}, wantErrSub: "not an HTTP probe"},
		{cmd: []string{"CMD", "wget", "--spider", "http://self:5000/status"}, port: 5000, path: "/status", method: "GET"},
		{cmd: []string{"CMD", "node", "-e", "fetch('http://self:3000/api/profile').then(r => r.ok)"}, port: 3000, path: "/api/profile", approx: true},
		{cmd: []string{"CMD-SHELL", "curl -f http://db:5432/"}, wantErrSub: "not the machine itself"},
		{cmd: []string{"CMD-SHELL", "curl -f http://localhost:${UNSET}/"}, wantErrSub: "not set"},
		{cmd: []string{"NONE"}, wantErrSub: "disabled"},
		{cmd: nil, wantErrSub: "empty"},
		{cmd: []string{"CMD-SHELL", "curl 'unterminated"}, wantErrSub: "split"},
	}
	for _, c := range cases {
		p, how, err := parseExecCheck(c.cmd, env, "self")
		name := strings.Join(c.cmd, " ")
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("%q: err = %v, want one containing %q", name, err, c.wantErrSub)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if p.Port != c.port || p.Path != c.path || (c.method != "" && p.Method != c.method) {
			t.Errorf("%q: got %+v, want port %d path %s method %s", name, p, c.port, c.path, c.method)
		}
		if (how != "") != c.approx {
			t.Errorf("%q: approximate = %q, want approximate %v", name, how, c.approx)
		}
	}
}

func TestNearestPreset(t *testing.T) {
	cases := []struct {
		cpus float64
		mem  int
		size string
		set  int
	}{
		{0, 0, "shared-cpu-1x", 0},
		{0.25, 512, "shared-cpu-1x", 512},
		{0.5, 256, "shared-cpu-1x", 0},
		{1, 2048, "shared-cpu-1x", 2048},
		{1, 3000, "shared-cpu-2x", 3072},
		{2, 512, "shared-cpu-2x", 0},
		{1.5, 1024, "shared-cpu-2x", 1024},
		{4, 4096, "shared-cpu-4x", 4096},
		{8, 32768, "performance-8x", 32768},
		{4, 12000, "shared-cpu-8x", 12032},
		{16, 65536, "performance-16x", 65536},
		{64, 1 << 20, "performance-16x", 131072},
	}
	for _, c := range cases {
		size, set := nearestPreset(c.cpus, c.mem)
		if size != c.size || set != c.set {
			t.Errorf("nearestPreset(%g, %d) = %s, %d; want %s, %d", c.cpus, c.mem, size, set, c.size, c.set)
		}
	}
}

func TestFlySchedule(t *testing.T) {
	cases := map[string]struct {
		sched string
		exact bool
	}{
		"@daily":             {"daily", true},
		"@hourly":            {"hourly", true},
		"*/5 * * * *":        {"hourly", false},
		"0 3 * * *":          {"daily", false},
		"0 3 * * 1":          {"weekly", false},
		"0 0 1 * *":          {"monthly", false},
		"cron(0 12 * * ? *)": {"daily", false},
		"rate(5 minutes)":    {"hourly", false},
		"rate(1 day)":        {"daily", false},
		"@every 1h":          {"hourly", false},
		"nonsense":           {"daily", false},
	}
	for in, want := range cases {
		s, e := flySchedule(in)
		if s != want.sched || e != want.exact {
			t.Errorf("flySchedule(%q) = %s, %v; want %s, %v", in, s, e, want.sched, want.exact)
		}
	}
}

func TestRewriteHosts(t *testing.T) {
	hosts := map[string]string{"db": "x-db.internal", "redis": "x-redis.internal"}
	cases := map[string]string{
		"postgres://u:p@db:5432/app": "postgres://u:p@x-db.internal:5432/app",
		"redis://redis:6379/0":       "redis://x-redis.internal:6379/0",
		"db":                         "x-db.internal",
		"db:5432,redis:6379":         "x-db.internal:5432,x-redis.internal:6379",
		"mydb:5432":                  "mydb:5432",
		"http://dbadmin/":            "http://dbadmin/",
		"use the db for data":        "use the db for data",
	}
	for in, want := range cases {
		got, _ := rewriteHosts(in, hosts)
		if got != want {
			t.Errorf("rewriteHosts(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLooksSecret(t *testing.T) {
	for _, n := range []string{"SECRET_KEY_BASE", "DB_PASSWORD", "GITHUB_TOKEN", "STRIPE_API_KEY", "AWS_SECRET_ACCESS_KEY", "SENTRY_DSN"} {
		if !looksSecret(n, "x") {
			t.Errorf("%s should be a secret", n)
		}
	}
	for _, n := range []string{"PORT", "NODE_ENV", "POSTGRES_HOST_AUTH_METHOD", "KEYCLOAK_URL", "LOG_LEVEL"} {
		if looksSecret(n, "x") {
			t.Errorf("%s should not be a secret", n)
		}
	}
	if !looksSecret("DATABASE_URL", "postgres://u:hunter2@db/app") {
		t.Error("a URL with a password is a secret")
	}
	if looksSecret("DATABASE_URL", "postgres://db/app") {
		t.Error("a URL without a password is not a secret")
	}
	if looksSecret("POSTGRES_PASSWORD_FILE", "/run/secrets/pw") {
		t.Error("a *_FILE path is not a secret")
	}
}

// TestSecretValuesStayOut checks that values from the source files reach
// no output unless IncludeSecretValues is set.
func TestSecretValuesStayOut(t *testing.T) {
	dir := t.TempDir()
	const pw = "s3cr3t-hunter2"
	compose := `services:
  web:
    image: example/web:1
    ports: ["8080:8080"]
    environment:
      DATABASE_URL: postgres://app:` + pw + `@db:5432/app
      API_TOKEN: ` + pw + `
    env_file: web.env
    secrets: [pw]
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ` + pw + `
secrets:
  pw:
    file: ./pw.txt
`
	mustWrite(t, filepath.Join(dir, "compose.yaml"), compose)
	mustWrite(t, filepath.Join(dir, "web.env"), "SMTP_PASSWORD="+pw+"\n")
	mustWrite(t, filepath.Join(dir, "pw.txt"), pw)
	for _, include := range []bool{false, true} {
		res, err := Import("compose", dir, Options{IncludeSecretValues: include})
		if err != nil {
			t.Fatal(err)
		}
		files, err := res.Files()
		if err != nil {
			t.Fatal(err)
		}
		var secrets, rest strings.Builder
		for _, f := range files {
			if strings.HasSuffix(f.Path, ".secrets.env") {
				secrets.Write(f.Data)
			} else {
				rest.Write(f.Data)
			}
		}
		if strings.Contains(rest.String(), pw) || strings.Contains(rest.String(), "aHVudGVy") {
			t.Fatalf("include=%v: a secret value leaked into fly.toml or the report", include)
		}
		got := secrets.String()
		if include != strings.Contains(got, pw) {
			t.Fatalf("include=%v: secrets files:\n%s", include, got)
		}
		for _, name := range []string{"DATABASE_URL=", "API_TOKEN=", "SMTP_PASSWORD=", "POSTGRES_PASSWORD=", "SECRET_PW="} {
			if !strings.Contains(got, name) {
				t.Errorf("include=%v: secret %s missing from:\n%s", include, name, got)
			}
		}
		if include && !strings.Contains(got, "DATABASE_URL=postgres://app:"+pw+"@"+res.Apps[1].Name+".internal:5432/app") &&
			!strings.Contains(got, "@"+appName(filepath.Base(dir))+"-db.internal") {
			t.Errorf("the included DATABASE_URL does not point at the db app:\n%s", got)
		}
	}
}

func TestComposeFeatures(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, ".env"), "WEB_PORT=9000\nTAG=2.1\n")
	mustWrite(t, filepath.Join(dir, "base.yaml"), `services:
  base:
    image: example/app:${TAG}
    environment:
      LOG_LEVEL: info
`)
	mustWrite(t, filepath.Join(dir, "compose.yaml"), `x-restart: &restart
  restart: on-failure
services:
  web:
    <<: *restart
    extends:
      file: base.yaml
      service: base
    ports: ["80:${WEB_PORT}"]
    environment:
      MISSING: ${NOT_SET:-fallback}
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "2", memory: 4G}
  debug:
    image: busybox
    profiles: [debug]
  job:
    image: example/app:${TAG}
    command: ["run", "--once", "it's"]
    healthcheck:
      test: wget -q --spider http://localhost:9000/ || exit 1
`)
	res, err := Import("compose", dir, Options{Name: "shop", Region: "fra"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Apps) != 2 {
		t.Fatalf("apps = %d, want 2 (debug is in an inactive profile)", len(res.Apps))
	}
	web := res.Apps[1]
	if web.Name != "shop-web" {
		t.Fatalf("app name %s", web.Name)
	}
	c := web.Config
	if c.Build.Image != "example/app:2.1" || c.HTTPService == nil || c.HTTPService.InternalPort != 9000 {
		t.Errorf("interpolation/extends not applied: %+v %+v", c.Build, c.HTTPService)
	}
	if c.Env["LOG_LEVEL"] != "info" || c.Env["MISSING"] != "fallback" {
		t.Errorf("env %v", c.Env)
	}
	if len(c.Restart) != 1 || c.Restart[0].Policy != "on-failure" {
		t.Errorf("anchor merge not applied: %+v", c.Restart)
	}
	if len(c.VM) != 1 || c.VM[0].Size != "shared-cpu-2x" || c.VM[0].Memory != "4096mb" || c.PrimaryRegion != "fra" {
		t.Errorf("vm %+v region %s", c.VM, c.PrimaryRegion)
	}
	if !contains(res.Report.Actions, "hangar scale count 3 -a shop-web") {
		t.Errorf("actions %v", res.Report.Actions)
	}
	job := res.Apps[0].Config
	if job.Processes["app"] != `run --once 'it'\''s'` {
		t.Errorf("command quoting: %q", job.Processes["app"])
	}
	if len(job.Checks) != 1 || job.Checks["health_9000"] == nil || job.Checks["health_9000"].Path != "/" {
		t.Errorf("exec check on a worker should become a top-level check: %+v", job.Checks)
	}
	// All profiles.
	res, err = Import("compose", dir, Options{Profiles: []string{"*"}})
	if err != nil || len(res.Apps) != 3 {
		t.Fatalf("with all profiles: %v, %d apps", err, len(res.Apps))
	}
}

func TestHerokuPortAndRelease(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "Procfile"), "web: gunicorn app:app --bind 0.0.0.0:$PORT\nrelease: python manage.py migrate\nworker: celery -A app worker\nbad line here\n")
	mustWrite(t, filepath.Join(dir, "app.json"), `{"name":"py app","formation":{"web":{"quantity":2,"size":"standard-2x"}},"env":{"PORT":"5000"}}`)
	res, err := Import("heroku", filepath.Join(dir, "Procfile"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if res.Apps[0].Name != "py-app" {
		t.Errorf("name %s", res.Apps[0].Name)
	}
	if c.HTTPService.InternalPort != 8080 || c.Env["PORT"] != "8080" {
		t.Errorf("PORT %q internal_port %d must match", c.Env["PORT"], c.HTTPService.InternalPort)
	}
	if c.Deploy == nil || c.Deploy.ReleaseCommand != "python manage.py migrate" {
		t.Errorf("release %+v", c.Deploy)
	}
	if c.Processes["web"] != `sh -c 'gunicorn app:app --bind 0.0.0.0:$PORT'` {
		t.Errorf("web process %q should run in a shell for $PORT", c.Processes["web"])
	}
	if len(c.VM) != 1 || c.VM[0].Size != "shared-cpu-1x" || c.VM[0].Memory != "1024mb" || c.VM[0].Processes[0] != "web" {
		t.Errorf("vm %+v", c.VM)
	}
	if !contains(res.Report.Actions, "hangar scale count web=2 -a py-app") {
		t.Errorf("actions %v", res.Report.Actions)
	}
	found := false
	for _, e := range res.Report.Entries {
		if e.Key == "Procfile" && strings.Contains(e.Warning, "line 4") {
			found = true
		}
	}
	if !found {
		t.Error("malformed Procfile line not reported")
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		format, file, content, want string
	}{
		{"heroku", "app.json", `{"name": "x",,}`, "line 1, column 14"},
		{"heroku", "app.json", `[1, 2]`, "one JSON object"},
		{"render", "render.yaml", "services:\n  - name: [\n", "invalid render.yaml"},
		{"render", "render.yaml", "services:\n  - type: web\n", "has no name"},
		{"railway", "railway.json", `{"deploy": {"numReplicas": "two"}}`, "schema"},
		{"railway", "railway.toml", "[deploy\n", "invalid railway.toml"},
		{"ecs", "task.json", `{"containerDefinitions": []}`, "empty or missing"},
		{"ecs", "task.json", `{"containerDefinitions": [{"name": 1}]}`, "containerDefinitions[0]"},
		{"compose", "compose.yaml", "services:\n  web:\n    image: [\n", "compose.yaml"},
		{"compose", "compose.yaml", "services:\n  web:\n    ports: nope\n", "compose.yaml"},
		{"copilot", "manifest.yml", "name: x\n", "no type"},
	}
	for i, c := range cases {
		d := filepath.Join(dir, c.format+string(rune('a'+i)))
		mustWrite(t, filepath.Join(d, c.file), c.content)
		_, err := Import(c.format, filepath.Join(d, c.file), Options{})
		if err == nil {
			t.Errorf("%s %q: no error", c.format, c.content)
			continue
		}
		var ie *InputError
		if !errors.As(err, &ie) || ie.Hint == "" {
			t.Errorf("%s: error %v carries no hint", c.format, err)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s %q: error %q should name the file and contain %q", c.format, c.content, err, c.want)
		}
	}
	if _, err := Import("compose", filepath.Join(dir, "nope"), Options{}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing path: %v", err)
	}
	if _, err := Import("nomad", dir, Options{}); err == nil || !strings.Contains(err.Error(), "compose") {
		t.Errorf("unknown format: %v", err)
	}
	empty := t.TempDir()
	for _, f := range Formats {
		if _, err := Import(f, empty, Options{}); err == nil {
			t.Errorf("%s on an empty directory: no error", f)
		}
	}
}

// TestHerokuTolerant: a key of an unexpected shape is reported, not fatal,
// and the early list form of formation is read.
func TestHerokuTolerant(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "Procfile"), "web: node server.js\r\nclock: node clock.js\r\n")
	mustWrite(t, filepath.Join(dir, "app.json"), `{"name": "tolerant", "env": [], "addons": "heroku-postgresql",
		"formation": [{"process": "web", "quantity": 2, "size": "standard-2X"}], "scripts": {"postdeploy": 7}}`)
	res, err := Import("heroku", dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var env, addons bool
	for _, e := range res.Report.Entries {
		env = env || (e.Key == "app.json env" && e.Status == Unsupported)
		addons = addons || (e.Key == "app.json addons" && e.Status == Unsupported)
	}
	if !env || !addons {
		t.Errorf("bad keys not reported: %+v", res.Report.Entries)
	}
	if !contains(res.Report.Actions, "hangar scale count web=2 -a tolerant") {
		t.Errorf("list-form formation not read: %v", res.Report.Actions)
	}
	if res.Apps[0].Config.Processes["clock"] != "node clock.js" {
		t.Errorf("CRLF Procfile: %v", res.Apps[0].Config.Processes)
	}
}

func TestWriteDir(t *testing.T) {
	res, err := Import("render", "testdata/render/celery/input", Options{Region: "ord"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	written, err := res.WriteDir(out, false)
	if err != nil {
		t.Fatal(err)
	}
	// app, queue and flower build from the source (one generated
	// Dockerfile, the same for all three): their configs sit beside it.
	for _, want := range []string{"fly.app.toml", "fly.queue.toml", "fly.flower.toml", "Dockerfile", "celery-redis/fly.toml", "migration-report.txt", "migration-report.json"} {
		if _, err := os.Stat(filepath.Join(out, want)); err != nil {
			t.Errorf("%s not written (%v); wrote %v", want, err, written)
		}
	}
	var rep map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "migration-report.json"))
	if err := json.Unmarshal(b, &rep); err != nil || rep["summary"] == nil {
		t.Errorf("report json: %v %v", err, rep["summary"])
	}
	if _, err := res.WriteDir(out, false); err == nil {
		t.Error("second write without force should refuse to overwrite fly.toml")
	}
	if _, err := res.WriteDir(out, true); err != nil {
		t.Errorf("force: %v", err)
	}
}

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
