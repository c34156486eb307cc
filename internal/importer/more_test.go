package importer

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestHerokuYML(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "heroku.yml"), `build:
  docker:
    web: Dockerfile.web
    worker: worker/Dockerfile
  config:
    RAILS_ENV: production
release:
  image: web
  command:
    - ./release.sh
run:
  web: bundle exec puma -p $PORT
  worker:
    command:
      - bundle exec sidekiq
    image: worker
`)
	res, err := Import("heroku", dir, Options{Name: "yml-app"})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if c.Build.Dockerfile != "Dockerfile.web" || c.Build.Args["RAILS_ENV"] != "production" {
		t.Errorf("build %+v", c.Build)
	}
	if c.Deploy == nil || c.Deploy.ReleaseCommand != "./release.sh" {
		t.Errorf("release %+v", c.Deploy)
	}
	if c.Processes["worker"] != "bundle exec sidekiq" || !strings.HasPrefix(c.Processes["web"], "sh -c") {
		t.Errorf("processes %v", c.Processes)
	}
	if c.HTTPService == nil || c.Env["PORT"] != "8080" {
		t.Errorf("web service/PORT: %+v %v", c.HTTPService, c.Env)
	}
}

func TestCopilotWorkspace(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "copilot", ".workspace"), "application: shop\n")
	mustWrite(t, filepath.Join(dir, "copilot", "environments", "test", "manifest.yml"), "name: test\ntype: Environment\n")
	mustWrite(t, filepath.Join(dir, "copilot", "web", "manifest.yml"), `name: web
type: Load Balanced Web Service
http:
  path: '/'
  healthcheck:
    path: /healthz
    grace_period: 45s
image:
  build:
    dockerfile: web/Dockerfile
    context: web
  port: 3000
cpu: 1024
memory: 2048
count: 2
variables:
  API_URL: http://api:8080
secrets:
  DB_PASSWORD: /copilot/shop/test/secrets/db
storage:
  volumes:
    uploads:
      path: /srv/uploads
      efs: true
environments:
  prod:
    count: 5
`)
	mustWrite(t, filepath.Join(dir, "copilot", "api", "manifest.yml"), `name: api
type: Backend Service
image:
  location: example/api:1
  port: 8080
`)
	mustWrite(t, filepath.Join(dir, "copilot", "report", "manifest.yml"), `name: report
type: Scheduled Job
image:
  location: example/report:1
on:
  schedule: "@daily"
command: ["python", "report.py"]
`)
	res, err := Import("copilot", dir, Options{Environment: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Apps) != 3 {
		t.Fatalf("apps %d", len(res.Apps))
	}
	var web *App
	for _, a := range res.Apps {
		if a.Name == "web" {
			web = a
		}
	}
	c := web.Config
	if c.HTTPService.InternalPort != 3000 || len(c.HTTPService.Checks) != 1 || c.HTTPService.Checks[0].Path != "/healthz" || c.HTTPService.Checks[0].GracePeriod != "45s" {
		t.Errorf("http %+v", c.HTTPService)
	}
	if c.Env["API_URL"] != "http://api.internal:8080" {
		t.Errorf("service discovery not rewritten: %v", c.Env)
	}
	if len(c.Mounts) != 1 || c.Mounts[0].Destination != "/srv/uploads" {
		t.Errorf("mounts %+v", c.Mounts)
	}
	// Copilot builds in the Dockerfile's directory: the config goes there.
	if c.Build.Dockerfile != "Dockerfile" || web.Context != "web" || c.VM[0].Size != "shared-cpu-1x" || c.VM[0].Memory != "2048mb" {
		t.Errorf("build %+v vm %+v", c.Build, c.VM[0])
	}
	if !contains(res.Report.Actions, "hangar scale count 5 -a web") {
		t.Errorf("environment override not applied: %v", res.Report.Actions)
	}
	if !contains(res.Report.Actions, "hangar machine run example/report:1 --schedule daily -a report -- python report.py") {
		t.Errorf("scheduled job: %v", res.Report.Actions)
	}
}

func TestECSWrappersAndDatabases(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "td.json"), `{"taskDefinition": {"family": "shop", "cpu": "1 vCPU", "memory": "2 GB",
 "containerDefinitions": [
  {"name": "web", "image": "example/web", "essential": true, "portMappings": [{"containerPort": 8000}],
   "environment": [{"name": "DATABASE_HOST", "value": "db"}],
   "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:x"}],
   "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost:8000/health || exit 1"], "interval": 10, "timeout": 3, "startPeriod": 20}},
  {"name": "db", "image": "postgres:15", "essential": true, "portMappings": [{"containerPort": 5432}]},
  {"name": "log_router", "image": "amazon/aws-for-fluent-bit:latest", "essential": false}
 ]}, "revision": 3}`)
	mustWrite(t, filepath.Join(dir, "svc.json"), `{"services": [{"serviceName": "shop", "desiredCount": 4,
 "loadBalancers": [{"containerName": "web", "containerPort": 8000}], "healthCheckGracePeriodSeconds": 30}]}`)
	res, err := Import("ecs", dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Apps) != 2 || res.Apps[0].Name != "shop" || res.Apps[1].Name != "shop-db" {
		t.Fatalf("apps %v", res.Report.Apps)
	}
	c := res.Apps[0].Config
	if c.HTTPService.InternalPort != 8000 || len(c.HTTPService.Checks) != 1 || c.HTTPService.Checks[0].GracePeriod != "30s" || c.HTTPService.Checks[0].Path != "/health" {
		t.Errorf("http %+v", c.HTTPService)
	}
	if c.Env["DATABASE_HOST"] != "shop-db.internal" {
		t.Errorf("env %v", c.Env)
	}
	if c.VM[0].Size != "shared-cpu-1x" || c.VM[0].Memory != "2048mb" {
		t.Errorf("vm %+v", c.VM[0])
	}
	if !contains(res.Report.Actions, "hangar scale count 4 -a shop") {
		t.Errorf("actions %v", res.Report.Actions)
	}
	db := res.Apps[1].Config
	if db.HTTPService != nil || len(db.Mounts) != 1 || db.Checks["tcp_5432"] == nil {
		t.Errorf("db app %+v", db)
	}
	sidecar := false
	for _, e := range res.Report.Entries {
		if strings.Contains(e.Key, "log_router") && e.Status == Unsupported {
			sidecar = true
		}
	}
	if !sidecar {
		t.Error("the log router sidecar is not reported")
	}
}

func TestRailwayEnvironmentsAndCron(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "railway.toml"), `[build]
builder = "NIXPACKS"
buildCommand = "npm run build"

[deploy]
startCommand = "node dist/job.js && echo done"
cronSchedule = "0 */6 * * *"
region = "europe-west4"

[environments.staging.deploy]
cronSchedule = "0 0 * * 0"
`)
	res, err := Import("railway", dir, Options{Name: "jobs", Environment: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if c.HTTPService != nil || c.PrimaryRegion != "ams" || c.Build.Dockerfile != "Dockerfile" || !strings.Contains(string(res.Apps[0].Dockerfile), "RUN npm run build\n") {
		t.Errorf("config %+v, Dockerfile:\n%s", c, res.Apps[0].Dockerfile)
	}
	want := "hangar machine run IMAGE --schedule weekly -a jobs -- sh -c 'node dist/job.js && echo done'"
	if !contains(res.Report.Actions, want) {
		t.Errorf("actions %v, want %s", res.Report.Actions, want)
	}
	if _, err := Import("railway", dir, Options{Environment: "nope"}); err == nil {
		t.Error("an undefined environment should be an error")
	}
}

// TestComposeProcessGroups: services with the same image and environment
// become process groups of one app; databases and differently configured
// services stay apart.
func TestComposeProcessGroups(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "compose.yaml"), `x-app: &app
  build: .
  environment:
    DATABASE_URL: postgres://app@db:5432/app
    CACHE: redis:6379
services:
  web:
    <<: *app
    ports: ["8000:8000"]
    healthcheck:
      test: curl -f http://localhost:8000/up
  worker:
    <<: *app
    command: ["celery", "-A", "proj", "worker"]
    deploy: {replicas: 3}
    healthcheck:
      test: curl -f http://localhost:9000/metrics
  beat:
    <<: *app
    command: celery -A proj beat
  admin:
    build: .
    environment:
      ROLE: admin
  db:
    image: postgres:16
  redis:
    image: redis:7
`)
	res, err := Import("compose", dir, Options{Name: "proj"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range res.Apps {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "proj-admin,proj-db,proj-redis,proj-web" {
		t.Fatalf("apps %v", names)
	}
	web := res.Apps[3].Config
	if len(web.Processes) != 3 || web.Processes["web"] != "" || web.Processes["worker"] != "celery -A proj worker" || web.Processes["beat"] != "celery -A proj beat" {
		t.Errorf("processes %q", web.Processes)
	}
	if web.HTTPService == nil || len(web.HTTPService.Processes) != 1 || web.HTTPService.Processes[0] != "web" || len(web.HTTPService.Checks) != 1 {
		t.Errorf("http_service %+v", web.HTTPService)
	}
	if chk := web.Checks["health_9000"]; chk == nil || len(chk.Processes) != 1 || chk.Processes[0] != "worker" {
		t.Errorf("worker check %+v", web.Checks)
	}
	if web.Env["CACHE"] != "proj-redis.internal:6379" {
		t.Errorf("env %v", web.Env)
	}
	if !contains(res.Report.Actions, "hangar scale count worker=3 -a proj-web") {
		t.Errorf("actions %v", res.Report.Actions)
	}
	data, err := web.MarshalTOML("")
	if err != nil {
		t.Fatal(err)
	}
	checkFlyToml(t, res.Apps[3], data)
}

func TestComposeV1AndPascalCaseECS(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "docker-compose.yml"), "web:\n  build: .\n  ports:\n    - \"5000:5000\"\n  links:\n    - redis\nredis:\n  image: redis\n")
	res, err := Import("compose", dir, Options{Name: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Apps) != 2 || res.Apps[1].Config.HTTPService == nil || res.Apps[1].Config.HTTPService.InternalPort != 5000 {
		t.Fatalf("v1 file: %v", res.Report.Apps)
	}
	mustWrite(t, filepath.Join(dir, "ecs", "td.json"), `{"Family": "pascal", "Cpu": "512", "Memory": "1024",
		"ContainerDefinitions": [{"Name": "app", "Image": "nginx", "PortMappings": [{"ContainerPort": 80}],
		"Environment": [{"Name": "MODE", "Value": "prod"}], "LogConfiguration": {"LogDriver": "awslogs"}}]}`)
	res, err = Import("ecs", filepath.Join(dir, "ecs"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if res.Apps[0].Name != "pascal" || c.HTTPService == nil || c.HTTPService.InternalPort != 80 || c.Env["MODE"] != "prod" {
		t.Errorf("PascalCase task definition: %+v", c)
	}
	for _, e := range res.Report.Entries {
		if strings.Contains(e.Warning, "unknown key") {
			t.Errorf("PascalCase key reported as unknown: %+v", e)
		}
	}
}

// TestComposeWithoutEnvFile: files that only load with their .env still
// convert; typed values get named placeholders, defaults are kept.
func TestComposeWithoutEnvFile(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "compose.yaml"), `x-check: &check
  interval: "$CHECK_INTERVAL"
  retries: $CHECK_RETRIES
services:
  api:
    image: "example/api:${API_TAG:-stable}"
    ports: ["$API_PORT:3000"]
    volumes: ["${DATA_DIR}:/data"]
    healthcheck:
      <<: *check
      test: ["CMD-SHELL", "HTTP_PROXY= curl -f http://api:3000/ready"]
`)
	res, err := Import("compose", dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Apps[0].Config
	if c.Build.Image != "example/api:stable" {
		t.Errorf("default lost: %s", c.Build.Image)
	}
	if c.HTTPService == nil || c.HTTPService.InternalPort != 3000 || len(c.HTTPService.Checks) != 1 || c.HTTPService.Checks[0].Interval != "30s" || c.HTTPService.Checks[0].Path != "/ready" {
		t.Errorf("http %+v", c.HTTPService)
	}
	notes := strings.Join(res.Report.Notes, "\n")
	for _, v := range []string{`CHECK_INTERVAL is not set`, `placeholder "30s"`, `placeholder "1"`, `placeholder "./DATA_DIR"`, `API_TAG is not set`} {
		if !strings.Contains(notes, v) {
			t.Errorf("notes miss %q:\n%s", v, notes)
		}
	}
}
