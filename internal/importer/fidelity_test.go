package importer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hangar-dev/hangar/internal/appconfig"
)

// Tests of the mechanisms behind migration fidelity (issue 21): one
// scanner for shell syntax, one-shot Procfile tasks, images broken by
// unset variables, Dockerfile facts, language detection.

func TestShellSyntax(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cmd  string
		want string // "" = runs as plain words
	}{
		{"bundle exec puma -C config/puma.rb", ""},
		{"RUBYOPT=--jit bundle exec rake db:migrate", "leading variable assignment"},
		{"env RUBYOPT=--jit bundle exec rake db:migrate", ""}, // env runs it: no shell needed
		{"node server.js --port=$PORT", "variable expansion"},
		{"node server.js --port='$PORT'", ""}, // quoted: a literal
		{`echo "a b" 'c d'`, ""},
		{`echo "$HOME"`, "variable expansion"},
		{"bin/setup && bin/start", "&&"},
		{"python manage.py migrate || true", "pipe"},
		{"node build.js > build.log", "redirection"},
		{"2>&1 node x", "redirection"},
		{"cp config/*.yml /etc/app/", "glob"},
		{"rm -rf tmp/cache[0-9]", "glob"},
		{"cd web; npm start", "command separator"},
		{"(cd web && npm start)", "subshell"},
		{"~/bin/app", "home directory"},
		{"app --opt=a~b", ""},
		{"echo {a,b}", "brace"},
		{"mix phx.server # boot", "comment"},
		{"gunicorn app:app --bind 0.0.0.0:8080 --log-level=info", ""},
		{"echo 'unterminated", "unterminated quote"},
		{"echo `date`", "command substitution"},
	} {
		got := shellSyntax(c.cmd)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("shellSyntax(%q) = %q, want %q", c.cmd, got, c.want)
		}
		out, why := shellWrap(c.cmd)
		if why != "" {
			// Wrapped: splitting the result gives back the command line.
			w, err := shellWords(out)
			if err != nil || len(w) != 3 || w[0] != "sh" || w[1] != "-c" || w[2] != c.cmd {
				t.Errorf("shellWrap(%q) = %q splits to %q (%v)", c.cmd, out, w, err)
			}
		} else if out != c.cmd {
			t.Errorf("shellWrap(%q) changed a plain command to %q", c.cmd, out)
		}
	}
}

func TestOneShot(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, cmd string
		once      bool
	}{
		{"web", "bundle exec puma -C config/puma.rb", false},
		{"worker", "bundle exec sidekiq", false},
		{"worker", "bundle exec rake jobs:work", false},
		{"resque", "QUEUE=* bundle exec rake resque:work", false},
		{"clock", "bundle exec clockwork config/clock.rb", false},
		{"warmcache", "bundle exec rake cache:warm", true},
		{"refresh", "bundle exec rake feeds:refresh", true},
		{"migrate", "python manage.py migrate", true},
		{"web", "python manage.py runserver 0.0.0.0:$PORT", false},
		{"worker", "python manage.py rqworker default", false},
		{"seed", "node scripts/seed.js", true},
		{"build", "npm run build", true},
		{"web", "npm start", false},
		{"compile", "yarn build", true},
		{"script", "bin/rails runner 'Report.mail_all'", true},
		{"dbup", "flask db upgrade", true},
		{"worker", "celery -A proj worker -l info", false},
		{"web", "mix phx.server", false},
		{"setupdb", "mix ecto.migrate", true},
	} {
		got := oneShot(c.name, c.cmd)
		if (got != "") != c.once {
			t.Errorf("oneShot(%q, %q) = %q, want one-shot %v", c.name, c.cmd, got, c.once)
		}
	}
}

// TestUnsetVariableEmptiesImage: n8n's compose file takes its tag from
// N8N_VERSION; without the .env the image became "docker.n8n.io/n8nio/n8n:",
// reported as mapped. Now the import fails and names the variable, while a
// default, or a variable only in a dropped field, still imports.
func TestUnsetVariableEmptiesImage(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, compose string) string {
		dir := t.TempDir()
		mustWrite(t, filepath.Join(dir, "docker-compose.yml"), compose)
		return dir
	}
	const n8n = `services:
  n8n:
    image: docker.n8n.io/n8nio/n8n:${N8N_VERSION}
    restart: always
    ports:
      - "5678:5678"
    environment:
      - N8N_HOST=${SUBDOMAIN}.${DOMAIN_NAME}
      - WEBHOOK_URL=https://${SUBDOMAIN}.${DOMAIN_NAME}/
    volumes:
      - n8n_data:/home/node/.n8n
volumes:
  n8n_data:
`
	_, err := Import("compose", write(t, n8n), Options{})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "N8N_VERSION") || !strings.Contains(err.Error(), `"docker.n8n.io/n8nio/n8n:"`) || !strings.Contains(ie.Hint, "N8N_VERSION") {
		t.Fatalf("import of an image emptied by N8N_VERSION: %v (%#v)", err, ie)
	}
	// A registry emptied the same way.
	_, err = Import("compose", write(t, "services:\n  api:\n    image: ${REGISTRY}/acme/api:1.2\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY") {
		t.Errorf("image with an empty registry: %v", err)
	}
	// With a default the image is whole.
	res, err := Import("compose", write(t, strings.Replace(n8n, "${N8N_VERSION}", "${N8N_VERSION:-1.64.0}", 1)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if img := res.Apps[0].Config.Build.Image; img != "docker.n8n.io/n8nio/n8n:1.64.0" {
		t.Errorf("image = %q", img)
	}
	// A .env that sets it.
	dir := write(t, n8n)
	mustWrite(t, filepath.Join(dir, ".env"), "N8N_VERSION=1.64.0\nSUBDOMAIN=n8n\nDOMAIN_NAME=example.com\n")
	if res, err = Import("compose", dir, Options{}); err != nil || res.Apps[0].Config.Build.Image != "docker.n8n.io/n8nio/n8n:1.64.0" {
		t.Errorf("with .env: %v", err)
	}
	// A typed field that the import drops anyway (read_only, like
	// mattermost's MATTERMOST_CONTAINER_READONLY) does not abort.
	mm := `services:
  mattermost:
    image: mattermost/mattermost-team-edition:9.11
    read_only: ${MATTERMOST_CONTAINER_READONLY}
    pids_limit: ${MATTERMOST_PIDS_LIMIT}
    tmpfs:
      - /tmp
    ports:
      - "8065:8065"
`
	if _, err := Import("compose", write(t, mm), Options{}); err != nil {
		t.Errorf("unset variable in read_only aborted the import: %v", err)
	}
	// And the produced fly.toml is refused by config validate if an image
	// still ends in ':' (belt and braces: appconfig checks every fly.toml).
	cfg, err := appconfig.Parse([]byte("app = \"n8n\"\n[build]\n  image = \"docker.n8n.io/n8nio/n8n:\"\n"), "fly.toml")
	if err == nil {
		_, err = cfg.Validate(false)
	}
	if err == nil {
		t.Error("appconfig accepts an image that ends in ':'")
	}
}

// TestProfileNamedButUnused: --profile naming a profile no service has is
// an error that lists the profiles the file uses.
func TestProfileNamedButUnused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "compose.yaml"), "services:\n  a:\n    image: nginx:1.27\n    profiles: [web]\n  b:\n    image: redis:7\n    profiles: [cache]\n")
	_, err := Import("compose", dir, Options{Profiles: []string{"db"}})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Hint, "cache, web") {
		t.Errorf("err = %v", err)
	}
	res, err := Import("compose", dir, Options{Profiles: []string{"web"}})
	if err != nil || len(res.Apps) != 1 {
		t.Fatalf("--profile web: %v", err)
	}
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	f := parseDockerfile([]byte(`# syntax=docker/dockerfile:1
FROM golang:1.22 AS build
RUN go build -o /out/app .
FROM --platform=linux/amd64 debian:bookworm-slim AS runtime
EXPOSE 8080/tcp \
  9090
EXPOSE 8080 $PORT
FROM runtime
`))
	if f.From != "debian:bookworm-slim" || !reflect.DeepEqual(f.Expose, []int{8080, 9090}) {
		t.Errorf("facts = %+v", f)
	}
	for _, c := range []struct {
		dockerfile, cmd string
		port            int
		tcp             bool
	}{
		{"FROM postgres:16\nEXPOSE 5432 8008\n", "", 5432, true},
		{"FROM bitnami/postgresql:16\n", "", 5432, true},
		{"FROM haproxy:2.9\nEXPOSE 5432\n", "", 5432, true},
		{"FROM haproxy:2.9\nEXPOSE 80\n", "", 0, false}, // HAProxy in HTTP mode
		{"FROM node:20\nEXPOSE 3000\n", "node server.js", 0, false},
		{"FROM python:3.12\n", "redis-server --port 6380", 6379, true},
		{"FROM ubuntu:24.04\nEXPOSE 6432\n", "exec pgbouncer /etc/pgbouncer.ini", 6432, true},
		{"FROM eclipse-mosquitto:2\nEXPOSE 1883\n", "", 1883, true},
	} {
		port, why, tcp := tcpGuess(parseDockerfile([]byte(c.dockerfile)), c.cmd)
		if tcp != c.tcp || tcp && port != c.port || tcp && why == "" {
			t.Errorf("tcpGuess(%q, %q) = %d, %q, %v; want %d, %v", c.dockerfile, c.cmd, port, why, tcp, c.port, c.tcp)
		}
	}
}

func TestDetectLang(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if l := detectLang(dir, []string{"heroku/nodejs", "heroku/ruby"}, nil); l.Name != "ruby" || !l.WithNode {
		t.Errorf("buildpacks nodejs+ruby: %+v", l)
	}
	if l := detectLang(dir, []string{"https://github.com/heroku/heroku-buildpack-python"}, nil); l.Name != "python" {
		t.Errorf("classic python buildpack URL: %+v", l)
	}
	if l := detectLang(dir, nil, []string{"sh -c 'x'", "gunicorn app:app"}); l.Name != "python" {
		t.Errorf("from commands: %+v", l)
	}
	mustWrite(t, filepath.Join(dir, "package.json"), "{}")
	mustWrite(t, filepath.Join(dir, "Gemfile"), "source 'https://rubygems.org'\n")
	if l := detectLang(dir, nil, nil); l.Name != "ruby" || l.Evidence != "Gemfile" || !l.WithNode {
		t.Errorf("Gemfile + package.json: %+v", l)
	}
	if l := detectLang(t.TempDir(), nil, nil); l.Name != "" {
		t.Errorf("empty dir: %+v", l)
	}
}

// TestGoCommandsForBuiltin: a builtin = "go" image runs the binary as its
// entrypoint and has no shell, so a command must name the binary and may
// only expand $PORT.
func TestGoCommandsForBuiltin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "go.mod"), "module github.com/acme/shopfront\n\ngo 1.22\n")
	got, ok := goBuiltinCommands(dir, []string{"bin/shopfront", "sh -c 'shopfront -listen :$PORT'", "./shopfront migrate"}, 8080)
	want := map[string]string{"bin/shopfront": "", "sh -c 'shopfront -listen :$PORT'": "-listen :8080", "./shopfront migrate": "migrate"}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("commands = %v, %v", got, ok)
	}
	if _, ok := goBuiltinCommands(dir, []string{"bin/worker"}, 8080); ok {
		t.Error("a second binary cannot run from the builtin image")
	}
	if _, ok := goBuiltinCommands(dir, []string{"sh -c 'shopfront > log'"}, 8080); ok {
		t.Error("a redirection needs a shell, which the builtin image lacks")
	}
	// Not builtin: a Dockerfile that builds every main package.
	sb, err := buildFromSource(dir, "Heroku", srcLang{Name: "go", Evidence: "go.mod"}, "", 8080, []string{"bin/worker"})
	if err != nil || sb.Build.Dockerfile != "Dockerfile" || !strings.Contains(string(sb.Dockerfile), "go build -trimpath -o /app/bin/ ./...") {
		t.Errorf("fallback = %+v, %v", sb, err)
	}
}

// TestGeneratedDockerfileWritten: Files writes the generated Dockerfile
// next to the fly.toml of the app built from source, which goes at the
// root beside its database apps; WriteDir refuses to overwrite one.
func TestGeneratedDockerfileWritten(t *testing.T) {
	t.Parallel()
	res, err := Import("heroku", filepath.Join("testdata", "heroku", "rails-release-env", "input"), Options{Name: "ledger"})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := res.WriteDir(out, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fly.toml", "Dockerfile", "ledger-postgres/fly.toml", "ledger-redis/fly.toml"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("%s not written: %v", p, err)
		}
	}
	df, _ := os.ReadFile(filepath.Join(out, "Dockerfile"))
	for _, want := range []string{"FROM ruby:3.2-slim", "nodejs npm", "COPY Gemfile Gemfile.lock ./", "RUN bundle install", "assets:precompile"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, df)
		}
	}
	if err := os.Remove(filepath.Join(out, "fly.toml")); err != nil {
		t.Fatal(err)
	}
	if _, err := res.WriteDir(out, false); err == nil || !strings.Contains(err.Error(), "Dockerfile") {
		t.Errorf("an existing Dockerfile was overwritten: %v", err)
	}
}

func FuzzShellSyntax(f *testing.F) {
	for _, s := range []string{"RUBYOPT=--jit bundle exec rake db:migrate", "a 'b $c' \"d\\\"e\"", "x=1", "echo {a,b}", "a\\ b", "'", "\"$\"", "cd x && y", "~/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		defer watchdog(10 * time.Second)()
		if !utf8.ValidString(cmd) {
			return // shlex reads runes: invalid bytes come back as U+FFFD
		}
		out, why := shellWrap(cmd)
		if why == "" {
			if _, err := shellWords(out); err != nil {
				t.Fatalf("%q runs without a shell but does not split: %v", cmd, err)
			}
			return
		}
		w, err := shellWords(out)
		if err != nil || len(w) != 3 || w[2] != strings.TrimSpace(cmd) {
			t.Fatalf("wrapped %q as %q, which splits to %q (%v)", cmd, out, w, err)
		}
	})
}

func FuzzDockerfile(f *testing.F) {
	f.Add([]byte("FROM postgres:16 AS db\nEXPOSE 5432/tcp 8008\nFROM db\n"))
	f.Add([]byte("FROM\nEXPOSE\nEXPOSE 99999 -1 abc\\\n"))
	if b, err := os.ReadFile(filepath.Join("testdata", "railway", "patroni-tcp", "input", "Dockerfile.patroni")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(10 * time.Second)()
		facts := parseDockerfile(data)
		for _, p := range facts.Expose {
			if p < 1 || p > 65535 {
				t.Fatalf("port %d out of range", p)
			}
		}
		if port, _, ok := tcpGuess(facts, string(data)); ok && (port < 1 || port > 65535) {
			t.Fatalf("guessed port %d", port)
		}
		_ = parseGoModule(data)
		if port, ok := haproxyTCP(data); ok && (port < 0 || port > 65535) {
			t.Fatalf("haproxy port %d", port)
		}
		_ = oneShot("x", string(data))
	})
}

// TestECSTaskOfOnlyAnAgent: a daemon task that runs only an agent still
// imports (the agent is the workload), with a note; a sidecar beside an
// app is never chosen as the app, whatever its place in the list.
func TestECSTaskOfOnlyAnAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "taskdef.json")
	mustWrite(t, p, `{"family": "datadog-agent-task", "containerDefinitions": [{"name": "datadog-agent", "image": "public.ecr.aws/datadog/agent:7", "cpu": 100, "memory": 512, "essential": true}]}`)
	res, err := Import("ecs", p, Options{})
	if err != nil || len(res.Apps) != 1 || res.Apps[0].Config.Build.Image != "public.ecr.aws/datadog/agent:7" || !strings.Contains(strings.Join(res.Report.Notes, " "), "helper") {
		t.Fatalf("agent-only task: %v %+v", err, res)
	}
	mustWrite(t, p, `{"family": "web", "containerDefinitions": [
  {"name": "fluent", "image": "fluent/fluent-bit:3.0", "essential": true},
  {"name": "worker", "image": "acme/worker:2", "essential": true}]}`)
	res, err = Import("ecs", p, Options{})
	if err != nil || len(res.Apps) != 1 || res.Apps[0].Config.Build.Image != "acme/worker:2" {
		t.Fatalf("log router listed first became the app: %v %+v", err, res.Apps[0].Config.Build)
	}
}

// TestComposeConfigInBuildContext: a compose service built from ./backend
// gets backend/fly.toml with dockerfile = "Dockerfile", so that `hangar
// deploy -c backend/fly.toml` builds the context compose built (before,
// <app>/fly.toml named backend/Dockerfile, which was not there).
func TestComposeConfigInBuildContext(t *testing.T) {
	t.Parallel()
	src := filepath.Join("testdata", "compose", "react-express-mongodb", "input")
	res, err := Import("compose", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if _, err := res.WriteDir(out, false); err != nil {
		t.Fatal(err)
	}
	for _, ctx := range []string{"backend", "frontend"} {
		b, err := os.ReadFile(filepath.Join(out, ctx, "fly.toml"))
		if err != nil || !strings.Contains(string(b), "dockerfile = 'Dockerfile'") {
			t.Errorf("%s/fly.toml: %v\n%s", ctx, err, b)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "input-db", "fly.toml")); err != nil {
		names, _ := os.ReadDir(out)
		t.Errorf("the image app is not in <app>/fly.toml: %v %v", err, names)
	}
}

// TestRailwayHAProxyTCP: an HAProxy whose haproxy.cfg says mode tcp (a
// Railway Postgres HA template) is a TCP service on its bind port, not an
// [http_service] on a guessed 8080.
func TestRailwayHAProxyTCP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "railway.toml"), "[build]\nbuilder = \"DOCKERFILE\"\n\n[deploy]\nnumReplicas = 2\n")
	mustWrite(t, filepath.Join(dir, "Dockerfile"), "FROM haproxy:2.9-alpine\nCOPY haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg\n")
	mustWrite(t, filepath.Join(dir, "haproxy.cfg"), `global
    maxconn 200

defaults
    mode tcp
    timeout connect 5s
    timeout client 30m
    timeout server 30m

frontend postgres_primary
    bind *:5433
    default_backend primary

backend primary
    option httpchk OPTIONS /primary
    server pg-1 pg-1.railway.internal:5432 check port 8008
`)
	res, err := Import("railway", dir, Options{Name: "pg-proxy"})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if c.HTTPService != nil || len(c.Services) != 1 || c.Services[0].Protocol != "tcp" || c.Services[0].InternalPort != 5433 {
		t.Errorf("HAProxy in TCP mode: http %+v services %+v", c.HTTPService, c.Services)
	}
	// The same image with an HTTP config keeps the HTTP guess, named as one.
	mustWrite(t, filepath.Join(dir, "haproxy.cfg"), "defaults\n    mode http\nfrontend web\n    bind *:8080\n")
	res, err = Import("railway", dir, Options{Name: "web-proxy"})
	if err != nil || res.Apps[0].Config.HTTPService == nil {
		t.Fatalf("HAProxy in HTTP mode: %v", err)
	}
	guessed := false
	for _, e := range res.Report.Entries {
		guessed = guessed || strings.HasPrefix(e.Warning, "guessed:")
	}
	if !guessed {
		t.Error("the guessed HTTP port is not reported as a guess")
	}
}
