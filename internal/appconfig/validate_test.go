package appconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestValidationRules(t *testing.T) {
	t.Parallel()
	runRuleCases(t, []ruleCase{
		// An image emptied by interpolation (n8nio/n8n:${N8N_VERSION}
		// with the variable unset) was accepted and failed at deploy.
		{name: "image with an empty tag", rule: "image", severity: SeverityError, line: 2,
			message: `[build] image "docker.n8n.io/n8nio/n8n:" ends in ":": the tag or digest is empty`, src: `
[build]
  image = "docker.n8n.io/n8nio/n8n:"
`},
		{name: "image with an empty digest", rule: "image", severity: SeverityError, line: 2,
			message: `[build] image "ghcr.io/acme/api@" ends in "@": the tag or digest is empty`, src: `
[build]
  image = "ghcr.io/acme/api@"
`},
		// Settings Hangar accepts but does not apply say so.
		{name: "edge_http not served", rule: "handler", severity: SeverityWarning, line: 6,
			message: `handler "edge_http" is not served by Hangar yet: this port would not be bound`, src: `
[[services]]
  internal_port = 8080
  protocol = "tcp"
  [[services.ports]]
    port = 8080
    handlers = ["edge_http"]
`},
		{name: "unknown handler is an error", rule: "handler", severity: SeverityError, line: 6,
			message: `unknown handler "pgtls": this port would not be bound`, src: `
[[services]]
  internal_port = 5432
  protocol = "tcp"
  [[services.ports]]
    port = 5432
    handlers = ["pgtls"]
`},
		{name: "pg_tls with tls", rule: "handler", severity: SeverityError, line: 6,
			message: "pg_tls does its own TLS for Postgres clients and cannot be combined with tls or http", src: `
[[services]]
  internal_port = 5432
  protocol = "tcp"
  [[services.ports]]
    port = 5432
    handlers = ["tls", "pg_tls"]
`},
		{name: "swap not applied", rule: "ignored", severity: SeverityWarning, line: 1,
			message: "swap_size_mb 512 is not applied: Hangar machines get no swap yet", src: `
swap_size_mb = 512
`},
		{name: "auto_rollback false not applied", rule: "ignored", severity: SeverityWarning, line: 2,
			message: "auto_rollback = false is not applied: Hangar always rolls a failed deploy back", src: `
[experimental]
  auto_rollback = false
`},
		{name: "unknown key", rule: "unknown-key", severity: SeverityWarning, line: 3,
			message: "unknown key bogus in [http_service]", src: `
[http_service]
  internal_port = 8080
  bogus = 1
`},
		{name: "unknown key strict", strict: true, rule: "unknown-key", severity: SeverityError, line: 3,
			message: "unknown key bogus in [http_service]", src: `
[http_service]
  internal_port = 8080
  bogus = 1
`},
		{name: "typo suggestion", rule: "unknown-key", severity: SeverityWarning, line: 3,
			message: "unknown key internal-port in [[services]]", src: `
[[services]]
  protocol = "tcp"
  internal-port = 8080
`},
		{name: "obsolete v1 key", rule: "obsolete-key", severity: SeverityWarning, line: 2,
			message: "experimental.private_network: obsolete key (every app is on its private network; this v1 setting does nothing)", src: `
[experimental]
  private_network = true
`},
		{name: "wrong type", rule: "type", severity: SeverityError, line: 2,
			message: `http_service.internal_port: expected an integer, found "eighty"`, src: `
[http_service]
  internal_port = "eighty"
`},
		{name: "wrong type table", rule: "type", severity: SeverityError, line: 1,
			message: "http_service: expected a table, found a string", src: `
http_service = "yes"
`},
		{name: "bad duration", rule: "duration", severity: SeverityError, line: 1,
			message: `kill_timeout: "5 seconds" is not a valid duration`, src: `
kill_timeout = "5 seconds"
`},
		{name: "bad size", rule: "mount-size", severity: SeverityError, line: 4,
			message: `mount "data" initial_size "ten" is not a size`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
  initial_size = "ten"
`},
		{name: "bad memory", rule: "vm-memory", severity: SeverityError, line: 2,
			message: `vm memory "lots" is not a size`, src: `
[[vm]]
  memory = "lots"
`},
		{name: "unknown vm size", rule: "vm-size", severity: SeverityError, line: 2,
			message: `unknown vm size "huge-1x"`, src: `
[[vm]]
  size = "huge-1x"
`},
		{name: "bad strategy", rule: "strategy", severity: SeverityError, line: 2,
			message: `unsupported deploy strategy "rolling-eyes"`, src: `
[deploy]
  strategy = "rolling-eyes"
`},
		{name: "canary with mounts", rule: "strategy-mounts", severity: SeverityError, line: 2,
			message: "the canary strategy cannot be used with [[mounts]]: it starts new machines beside the old ones, and a volume attaches to one machine at a time", src: `
[deploy]
  strategy = "canary"
[[mounts]]
  source = "data"
  destination = "/data"
`},
		{name: "bluegreen with mounts", rule: "strategy-mounts", severity: SeverityError, line: 2,
			message: "the bluegreen strategy cannot be used with [[mounts]]: it starts new machines beside the old ones, and a volume attaches to one machine at a time", src: `
[deploy]
  strategy = "bluegreen"
[[mounts]]
  source = "data"
  destination = "/data"
[checks.up]
  type = "tcp"
  port = 8080
`},
		{name: "bluegreen without checks", rule: "bluegreen-checks", severity: SeverityError, line: 2,
			message: "the bluegreen strategy needs health checks to know when the new machines are ready, and none are defined", src: `
[deploy]
  strategy = "bluegreen"
`},
		{name: "check interval too short", rule: "check-bounds", severity: SeverityError, line: 4,
			message: `check "up" interval 1s is too short; the minimum is 2s`, src: `
[checks.up]
  type = "tcp"
  port = 8080
  interval = "1s"
`},
		{name: "check timeout too long", rule: "check-bounds", severity: SeverityError, line: 4,
			message: `check "up" timeout 2m0s is too long; the maximum is 60s`, src: `
[checks.up]
  type = "tcp"
  port = 8080
  timeout = "2m"
`},
		{name: "service check interval clamped", rule: "check-bounds", severity: SeverityWarning, line: 7,
			message: "check interval 500ms is under 1s; Fly raises it to 1s", src: `
[[services]]
  protocol = "tcp"
  internal_port = 8080
  [[services.ports]]
    port = 80
  [[services.tcp_checks]]
    interval = 500
`},
		{name: "check type", rule: "check-type", severity: SeverityError, line: 2,
			message: `check "up" has type "grpc"; it must be "http" or "tcp"`, src: `
[checks.up]
  type = "grpc"
  port = 8080
`},
		{name: "check without port", rule: "check-port", severity: SeverityError, line: 1,
			message: `check "up" has no port, and process group "app" has no [http_service] to take it from`, src: `
[checks.up]
  type = "tcp"
`},
		{name: "undefined group", rule: "undefined-group", severity: SeverityError, line: 5,
			message: `[http_service] refers to process group "wrker", which is not defined`, src: `
[processes]
  web = "bin/web"
[http_service]
  internal_port = 8080
  processes = ["web", "wrker"]
`},
		{name: "undefined group without processes", rule: "undefined-group", severity: SeverityWarning, line: 4,
			message: `[[mounts]] refers to process group "web", which is not defined; the section is ignored for it`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
  processes = ["web"]
`},
		{name: "service without ports", rule: "no-ports", severity: SeverityWarning, line: 1,
			message: "[[services]] for internal_port 8080 has no ports: the proxy will not route to it", src: `
[[services]]
  protocol = "tcp"
  internal_port = 8080
`},
		{name: "service without ports strict", strict: true, rule: "no-ports", severity: SeverityError, line: 1,
			message: "[[services]] for internal_port 8080 has no ports: the proxy will not route to it", src: `
[[services]]
  protocol = "tcp"
  internal_port = 8080
`},
		{name: "snapshot retention", rule: "mount-snapshot", severity: SeverityError, line: 4,
			message: `mount "data" snapshot_retention 90 is not between 1 and 60 days`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
  snapshot_retention = 90
`},
		{name: "mount too small", rule: "mount-size", severity: SeverityError, line: 4,
			message: `mount "data" initial_size "500mb" is smaller than 1GB`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
  initial_size = "500mb"
`},
		{name: "auto extend threshold", rule: "mount-extend", severity: SeverityError, line: 4,
			message: `mount "data" auto_extend_size_threshold must be between 50 and 99`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
  auto_extend_size_threshold = 20
  auto_extend_size_increment = "1gb"
`},
		{name: "two mounts for one group", rule: "mount-count", severity: SeverityError, line: 4,
			message: `process group "app" has more than one [[mounts]]`, src: `
[[mounts]]
  source = "a"
  destination = "/a"
[[mounts]]
  source = "b"
  destination = "/b"
`},
		{name: "release command cannot be split", rule: "command", severity: SeverityError, line: 2,
			message: "release_command cannot be split into arguments: EOF found when expecting closing quote", src: `
[deploy]
  release_command = "bin/rails 'db:migrate"
`},
		{name: "process command cannot be split", rule: "command", severity: SeverityError, line: 2,
			message: `the command of process group "web" cannot be split into arguments: EOF found when expecting closing quote`, src: `
[processes]
  web = "bin/web \"--port"
`},
		{name: "restart policy", rule: "restart-policy", severity: SeverityError, line: 2,
			message: `restart policy "sometimes" is not always, never or on-failure`, src: `
[[restart]]
  policy = "sometimes"
`},
		{name: "service protocol", rule: "protocol", severity: SeverityError, line: 2,
			message: `service protocol "http" is not tcp or udp`, src: `
[[services]]
  protocol = "http"
  internal_port = 8080
  [[services.ports]]
    port = 80
`},
		{name: "port range", rule: "port", severity: SeverityError, line: 2,
			message: "internal_port 70000 is not a valid port", src: `
[http_service]
  internal_port = 70000
`},
		{name: "files need one source", rule: "file", severity: SeverityWarning, line: 1,
			message: `[[files]] "/etc/x" must have exactly one source, found 0`, src: `
[[files]]
  guest_path = "/etc/x"
`},
		{name: "autostop value", rule: "type", severity: SeverityError, line: 3,
			message: `http_service.auto_stop_machines: "sometimes" is not an autostop mode`, src: `
[http_service]
  internal_port = 8080
  auto_stop_machines = "sometimes"
`},
		{name: "concurrency type", rule: "concurrency", severity: SeverityWarning, line: 4,
			message: `concurrency type "bytes" is not connections or requests; Hangar counts connections`, src: `
[http_service]
  internal_port = 8080
  [http_service.concurrency]
    type = "bytes"
`},
		{name: "max_unavailable", rule: "range", severity: SeverityError, line: 2,
			message: "max_unavailable must be greater than 0", src: `
[deploy]
  max_unavailable = 0
`},
		{name: "kill signal", rule: "kill-signal", severity: SeverityError, line: 1,
			message: `kill_signal "SIGWHATEVER" is not a signal Fly knows`, src: `
kill_signal = "SIGWHATEVER"
`},
		{name: "machine check kill signal", rule: "kill-signal", severity: SeverityError, line: 3,
			message: `kill_signal "SIGFOO" is not a signal Fly knows`, src: `
[[machine_checks]]
  command = ["true"]
  kill_signal = "SIGFOO"
`},
		{name: "env name with =", rule: "env", severity: SeverityError, line: 3,
			message: `env name "A=B" cannot be an environment variable: it is empty or holds '=' or a NUL byte`, src: `
[env]
  PORT = "8080"
  "A=B" = "x"
`},
		{name: "vm cpus bound", rule: "range", severity: SeverityError, line: 2,
			message: "vm cpus 100000 is over the bound of 16", src: `
[[vm]]
  cpus = 100000
`},
		{name: "vm memory bound", rule: "range", severity: SeverityError, line: 2,
			message: "vm memory 1000000000MB is over the bound of 524288MB", src: `
[[vm]]
  memory = "1000000000mb"
`},
		{name: "toml syntax", rule: "syntax", severity: SeverityError, line: 3,
			message: "invalid TOML: expected '=' after key", src: `
app = "a"
[http_service]
  internal_port 8080
`},
	})
}

// Validate reports every error, not just the first, each with its line.
func TestValidateListsEveryError(t *testing.T) {
	t.Parallel()
	src := `app = "a"
[deploy]
  strategy = "sideways"
[[restart]]
  policy = "sometimes"
[[vm]]
  size = "huge-1x"
`
	cfg, err := Parse([]byte(src), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Validate(false)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	var lines []int
	for _, d := range e.Diagnostics {
		lines = append(lines, d.Line)
	}
	if len(lines) != 3 || lines[0] != 3 || lines[1] != 5 || lines[2] != 7 {
		t.Errorf("lines = %v, want [3 5 7]\n%v", lines, err)
	}
	if !strings.HasPrefix(err.Error(), "fly.toml:3:") {
		t.Errorf("error text %q does not start with the position", err.Error())
	}
}

// Type errors are all reported by Parse, with positions.
func TestParseListsEveryTypeError(t *testing.T) {
	t.Parallel()
	src := `app = "a"
swap_size_mb = "lots"
[http_service]
  internal_port = true
  force_https = "maybe"
`
	_, err := Parse([]byte(src), "fly.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	if len(e.Diagnostics) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i, want := range []int{2, 4, 5} {
		if e.Diagnostics[i].Line != want {
			t.Errorf("error %d on line %d, want %d: %v", i, e.Diagnostics[i].Line, want, e.Diagnostics[i])
		}
	}
}

func TestDiagnosticString(t *testing.T) {
	t.Parallel()
	d := Diagnostic{File: "fly.toml", Line: 12, Col: 3, Message: "bad thing", Hint: "fix it", Severity: SeverityError}
	if got, want := d.String(), "fly.toml:12:3: bad thing (hint: fix it)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	d.Severity = SeverityWarning
	if got, want := d.String(), "fly.toml:12:3: warning: bad thing (hint: fix it)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
