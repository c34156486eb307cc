package appconfig

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Each old or variant form is read as flyctl reads it, with a note that
// points at the line.
func TestNormalizationNotes(t *testing.T) {
	t.Parallel()
	runRuleCases(t, []ruleCase{
		{name: "single mounts table", rule: "single-table", severity: SeverityNote, line: 2,
			message: "[mounts] written as a single table; read as a list of one", src: `
app = "a"
[mounts]
  source = "data"
  destination = "/data"
`},
		{name: "single vm table", rule: "single-table", severity: SeverityNote, line: 1,
			message: "[vm] written as a single table; read as a list of one", src: `
[vm]
  size = "shared-cpu-2x"
`},
		{name: "compute alias", rule: "alias", severity: SeverityNote, line: 1,
			message: "[compute] read as [[vm]]", src: `
[[compute]]
  size = "shared-cpu-2x"
`},
		{name: "env list", rule: "env-list", severity: SeverityNote, line: 2,
			message: "env written as a list of tables; merged into one table", src: `
app = "a"
env = [{ A = "1" }, { B = "2" }]
`},
		{name: "processes list", rule: "processes-list", severity: SeverityNote, line: 1,
			message: "processes written as a list of {name, command}; read as a table", src: `
[[processes]]
  name = "web"
  command = "bin/web"
`},
		{name: "empty v1 processes", rule: "processes-list", severity: SeverityNote, line: 1,
			message: "processes = [] is empty; ignored", src: `
processes = []
`},
		{name: "processes list with cmd", rule: "processes-list", severity: SeverityWarning, line: 3,
			message: `processes[0] uses cmd, which flyctl does not read: group "web" runs the image's default command`, src: `
[[processes]]
  name = "web"
  cmd = "bin/web"
`},
		{name: "concurrency string", rule: "concurrency-string", severity: SeverityNote, line: 4,
			message: `concurrency "20,25" read as type = "requests", soft_limit = 20, hard_limit = 25`, src: `
[[services]]
  internal_port = 8080
  protocol = "tcp"
  concurrency = "20,25"
  [[services.ports]]
    port = 80
`},
		{name: "integer kill_timeout", rule: "integer-duration", severity: SeverityNote, line: 1,
			message: "kill_timeout = 5 read as 5 seconds", src: `
kill_timeout = 5
`},
		{name: "experimental cmd string", rule: "experimental-string", severity: SeverityNote, line: 2,
			message: "experimental.cmd is a string; read as a one-element list", src: `
[experimental]
  cmd = "bin/start"
`},
		{name: "experimental kill_timeout", rule: "experimental-moved", severity: SeverityNote, line: 2,
			message: "experimental.kill_timeout read as the top-level kill_timeout", src: `
[experimental]
  kill_timeout = 10
`},
		{name: "experimental metrics_port", rule: "experimental-moved", severity: SeverityNote, line: 2,
			message: "experimental.metrics_port/metrics_path read as [[metrics]]", src: `
[experimental]
  metrics_port = 9091
  metrics_path = "/metrics"
`},
		{name: "checks list", rule: "checks-list", severity: SeverityNote, line: 1,
			message: "checks written as a list; read as named checks", src: `
[[checks]]
  name = "alive"
  type = "tcp"
  port = 8080
`},
		{name: "check headers list", rule: "headers-list", severity: SeverityNote, line: 5,
			message: "headers written as a list of {name, value}; read as a table", src: `
[checks.alive]
  type = "http"
  port = 8080
  path = "/"
  headers = [{ name = "Host", value = "example.com" }]
`},
		{name: "build_target", rule: "alias", severity: SeverityNote, line: 2,
			message: "build.build_target read as build.build-target", src: `
[build]
  build_target = "prod"
`},
		{name: "empty services section", rule: "empty-service", severity: SeverityNote, line: 1,
			message: "empty [[services]] section ignored", src: `
[[services]]
`},
		{name: "single services table", rule: "single-table", severity: SeverityNote, line: 1,
			message: "[services] written as a single table; read as a list of one service", src: `
[services]
  internal_port = 8080
  protocol = "tcp"
  [services.ports]
    port = 80
`},
		{name: "string port", rule: "coerce", severity: SeverityWarning, line: 5,
			message: "services[0].ports[0].port: integer written as a string", src: `
[[services]]
  internal_port = 6379
  protocol = "tcp"
  [[services.ports]]
    port = "10000"
`},
		{name: "duration without unit", rule: "coerce", severity: SeverityWarning, line: 2,
			message: `deploy.wait_timeout: duration "300" has no unit; reading it as 5m0s`, src: `
[deploy]
  wait_timeout = "300"
`},
		{name: "processes filter as a string", rule: "coerce", severity: SeverityWarning, line: 3,
			message: `http_service.processes: expected a list of strings, found a string; using ["app"]`, src: `
[http_service]
  internal_port = 8080
  processes = "app"
`},
		{name: "v1 script check", rule: "obsolete-key", severity: SeverityWarning, line: 2,
			message: `check "role" is a script check: script checks ran on Fly's v1 platform and are ignored on machines`, src: `
[checks.role]
  type = "script"
  command = "flycheck"
`},
	})
}

// The normalized values are the ones flyctl derives.
func TestNormalizedValues(t *testing.T) {
	t.Parallel()
	src := `
kill_timeout = 7
env = [{ A = 1 }, { B = true }]

[experimental]
  cmd = "serve --port 8080"
  metrics_port = 9091

[[processes]]
  name = "web"
  command = "bin/web -p 8080"

[mount]
  source = "data"
  destination = "/data"
  initial_size = 3

[vm]
  memory = 1024

[[services]]
  internal_port = "8080"
  protocol = "tcp"
  concurrency = "20,25"
  auto_stop_machines = true
  [services.ports]
    port = "80"
    handlers = "http"
  [[services.tcp_checks]]
    interval = 10000
    timeout = 2000
  [[services.http_checks]]
    path = "/"
    headers = [{ name = "Host", value = "x" }]
`
	cfg, err := Parse([]byte(src), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got, want any) {
		t.Helper()
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Errorf("%s = %s, want %s", what, g, w)
		}
	}
	check("kill_timeout", cfg.KillTimeout, types.DurationPtr(7*time.Second))
	check("env", cfg.Env, map[string]string{"A": "1", "B": "true"})
	check("experimental.cmd", cfg.Experimental.Cmd, []string{"serve --port 8080"})
	check("metrics", cfg.Metrics, []Metrics{{Port: 9091}})
	check("processes", cfg.Processes, map[string]string{"web": "bin/web -p 8080"})
	check("mounts", cfg.Mounts, []Mount{{Source: "data", Destination: "/data", InitialSize: "3"}})
	check("vm", cfg.VMs, []VM{{Memory: "1024"}})
	s := cfg.Services[0]
	check("internal_port", s.InternalPort, 8080)
	check("concurrency", s.Concurrency, &types.MachineServiceConcurrency{Type: "requests", SoftLimit: 20, HardLimit: 25})
	check("autostop", s.AutoStopMachines, types.AutostopStop)
	check("ports", s.Ports, []types.MachinePort{{Port: types.Ptr(80), Handlers: []string{"http"}}})
	check("tcp interval", s.TCPChecks[0].Interval, types.DurationPtr(10*time.Second))
	check("tcp timeout", s.TCPChecks[0].Timeout, types.DurationPtr(2*time.Second))
	check("headers", s.HTTPChecks[0].Headers, map[string]string{"Host": "x"})

	mc, err := cfg.ToMachineConfig("web", "img")
	if err != nil {
		t.Fatal(err)
	}
	check("guest", mc.Guest, &types.MachineGuest{CPUKind: "shared", CPUs: 1, MemoryMB: 1024})
	check("cmd", mc.Init.Cmd, []string{"bin/web", "-p", "8080"})
}
