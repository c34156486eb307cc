package appconfig

import "testing"

func TestLintRules(t *testing.T) {
	t.Parallel()
	runRuleCases(t, []ruleCase{
		{name: "PORT differs from internal_port", rule: "port-mismatch", severity: SeverityWarning, line: 2,
			message: "env PORT is 3000 but the service sends traffic to internal_port 8080: an app that listens on $PORT will not get requests", src: `
[env]
  PORT = "3000"
[http_service]
  internal_port = 8080
`},
		{name: "autostop with a volume", rule: "autostop-volume", severity: SeverityWarning, line: 7,
			message: `[http_service] stops idle machines and min_machines_running is 0, but process group "app" has a volume: every machine with the data can be stopped at once`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
[http_service]
  internal_port = 8080
  auto_stop_machines = "stop"
  min_machines_running = 0
`},
		{name: "service without processes filter", rule: "unfiltered-service", severity: SeverityWarning, line: 4,
			message: `[processes] defines web, worker but [http_service] has no processes filter: Fly attaches it to "web" only, and flyctl refuses it when deploying`, src: `
[processes]
  web = "bin/web"
  worker = "bin/worker"
[http_service]
  internal_port = 8080
`},
		{name: "kill_timeout zero", rule: "kill-timeout", severity: SeverityWarning, line: 1,
			message: "kill_timeout is 0: the machine is killed without time to finish requests or flush data", src: `
kill_timeout = 0
`},
		{name: "kill_timeout too long", rule: "kill-timeout", severity: SeverityWarning, line: 1,
			message: "kill_timeout 10m0s is over Fly's maximum of 300s; it will be cut to 300s", src: `
kill_timeout = "10m"
`},
		{name: "check hits the database", rule: "check-db", severity: SeverityWarning, line: 5,
			message: `health check path "/health/db" looks like it queries the database: when the database is slow every machine fails its check at once`, src: `
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "10s"
    path = "/health/db"
`},
		{name: "volume with several machines", rule: "volume-scale", severity: SeverityWarning, line: 6,
			message: `process group "app" has a volume and expects 3 machines running: each machine needs its own volume, and they do not share data`, src: `
[[mounts]]
  source = "data"
  destination = "/data"
[http_service]
  internal_port = 8080
  min_machines_running = 3
`},
		{name: "force_https on tcp port", rule: "force-https", severity: SeverityWarning, line: 7,
			message: "force_https has no effect on a port without the http handler (handlers: tls)", src: `
[[services]]
  protocol = "tcp"
  internal_port = 8080
  [[services.ports]]
    port = 443
    handlers = ["tls"]
    force_https = true
`},
		{name: "singular mount", rule: "singular-mount", severity: SeverityWarning, line: 2,
			message: "[mount] is not a fly.toml section: flyctl reads it as [[mounts]], but Fly's documentation and other tools ignore it, so the volume may silently not be mounted", src: `
app = "a"
[mount]
  source = "data"
  destination = "/data"
`},
		{name: "processes under ports", rule: "wrong-section", severity: SeverityWarning, line: 6,
			message: "processes is not a setting of [[services.ports]]; it belongs to [[services]]", src: `
[[services]]
  protocol = "tcp"
  internal_port = 8080
  [[services.ports]]
    port = 80
    processes = ["app"]
`},
		{name: "env under http_service", rule: "wrong-section", severity: SeverityWarning, line: 3,
			message: "env is not a setting of [http_service]; it belongs to the top level", src: `
[http_service]
  internal_port = 8080
  [http_service.env]
    A = "1"
`},
		{name: "http_checks under http_service", rule: "wrong-section", severity: SeverityWarning, line: 3,
			message: "http_checks is not a setting of [http_service]", src: `
[http_service]
  internal_port = 8080
  [[http_service.http_checks]]
    path = "/"
`},
		{name: "services.ports without services", rule: "wrong-section", severity: SeverityWarning, line: 3,
			message: "[[services.ports]] has no [[services]] header above it; read as a service of its own", src: `
[http_service]
  internal_port = 8080
[[services.ports]]
  port = 443
`},
		{name: "kill_timeout under a section", rule: "wrong-section", severity: SeverityWarning, line: 3,
			message: "kill_timeout is not a setting of [build]; it belongs to the top level", src: `
[build]
  image = "nginx"
kill_timeout = 5
`},
	})
}
