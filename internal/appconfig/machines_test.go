package appconfig

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

const multiGroup = `
app = "shop"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"
swap_size_mb = 256

[env]
  LOG_LEVEL = "info"

[processes]
  web = "bundle exec puma -C 'config/puma.rb'"
  worker = "bundle exec sidekiq -q default -q \"mail high\""

[http_service]
  internal_port = 3000
  force_https = true
  auto_stop_machines = "stop"
  auto_start_machines = true
  min_machines_running = 1
  processes = ["web"]
  [[http_service.checks]]
    interval = "15s"
    timeout = "2s"
    path = "/up"
    method = "GET"

[[services]]
  protocol = "tcp"
  internal_port = 9000
  processes = ["worker"]
  [[services.ports]]
    port = 9000
  [[services.tcp_checks]]
    interval = "10s"

[checks.web_alive]
  type = "http"
  path = "/alive"
  processes = ["web"]
  [checks.web_alive.headers]
    X-B = "2"
    X-A = "1"

[checks.worker_port]
  type = "tcp"
  port = 9000
  processes = ["worker"]

[[mounts]]
  source = "uploads"
  destination = "/uploads"
  auto_extend_size_threshold = 80
  auto_extend_size_increment = "2gb"
  auto_extend_size_limit = "20gb"
  snapshot_retention = 14
  processes = ["web"]

[[vm]]
  size = "shared-cpu-2x"

[[vm]]
  size = "performance-1x"
  memory = "4gb"
  processes = ["worker"]

[[restart]]
  policy = "on-failure"
  retries = 3
  processes = ["worker"]

[[restart]]
  policy = "never"
  processes = ["web"]

[[metrics]]
  port = 9394
  path = "/metrics"
  processes = ["web"]

[[files]]
  guest_path = "/etc/motd"
  raw_value = "hello"

[[files]]
  guest_path = "/etc/secret"
  secret_name = "SECRET_FILE"
  processes = ["worker"]

[[statics]]
  guest_path = "/app/public"
  url_prefix = "/assets"
`

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestToMachineConfigPerGroup(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(multiGroup), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Validate(true); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := cfg.ProcessGroups(); !reflect.DeepEqual(got, []string{"web", "worker"}) {
		t.Fatalf("ProcessGroups = %v", got)
	}

	web, err := cfg.ToMachineConfig("web", "registry/shop:7")
	if err != nil {
		t.Fatal(err)
	}
	want := &types.MachineConfig{
		Image: "registry/shop:7",
		Env:   map[string]string{"LOG_LEVEL": "info", "FLY_PROCESS_GROUP": "web", "PRIMARY_REGION": "ams"},
		Init: types.MachineInit{
			Cmd:        []string{"bundle", "exec", "puma", "-C", "config/puma.rb"},
			SwapSizeMB: types.Ptr(256),
		},
		Guest:    &types.MachineGuest{CPUKind: "shared", CPUs: 2, MemoryMB: 512},
		Metadata: map[string]string{types.MetaProcessGroup: "web", types.MetaPlatform: "v2"},
		Mounts: []types.MachineMount{{
			Path: "/uploads", Name: "uploads", ExtendThresholdPercent: 80, AddSizeGB: 2, SizeGBLimit: 20, SnapshotRetention: 14,
		}},
		Services: []types.MachineService{{
			Protocol:           "tcp",
			InternalPort:       3000,
			Autostop:           types.Ptr(types.AutostopStop),
			Autostart:          types.Ptr(true),
			MinMachinesRunning: types.Ptr(1),
			Ports: []types.MachinePort{
				{Port: types.Ptr(80), Handlers: []string{"http"}, ForceHTTPS: true},
				{Port: types.Ptr(443), Handlers: []string{"http", "tls"}},
			},
			Checks: []types.MachineCheck{{
				Type: "http", Interval: types.DurationPtr(15 * time.Second), Timeout: types.DurationPtr(2 * time.Second),
				Method: "GET", Path: "/up",
			}},
		}},
		Checks: map[string]types.MachineCheck{
			"web_alive": {Type: "http", Port: types.Ptr(3000), Path: "/alive", Headers: []types.MachineHTTPHeader{
				{Name: "X-A", Values: []string{"1"}}, {Name: "X-B", Values: []string{"2"}},
			}},
		},
		Restart:    &types.MachineRestart{Policy: "no"},
		Files:      []types.File{{GuestPath: "/etc/motd", RawValue: types.Ptr("aGVsbG8=")}},
		Statics:    []types.Static{{GuestPath: "/app/public", URLPrefix: "/assets"}},
		StopConfig: &types.StopConfig{Signal: types.Ptr("SIGTERM"), Timeout: types.DurationPtr(30 * time.Second)},
		Metrics:    &types.MachineMetrics{Port: 9394, Path: "/metrics"},
	}
	if got, w := asJSON(t, web), asJSON(t, want); got != w {
		t.Errorf("web machine config:\n got %s\nwant %s", got, w)
	}

	worker, err := cfg.ToMachineConfig("worker", "registry/shop:7")
	if err != nil {
		t.Fatal(err)
	}
	if got := worker.Init.Cmd; !reflect.DeepEqual(got, []string{"bundle", "exec", "sidekiq", "-q", "default", "-q", "mail high"}) {
		t.Errorf("worker cmd = %q", got)
	}
	if got := asJSON(t, worker.Guest); got != `{"cpu_kind":"performance","cpus":1,"memory_mb":4096}` {
		t.Errorf("worker guest = %s", got)
	}
	if len(worker.Services) != 1 || worker.Services[0].InternalPort != 9000 || len(worker.Services[0].Checks) != 1 {
		t.Errorf("worker services = %s", asJSON(t, worker.Services))
	}
	if _, ok := worker.Checks["worker_port"]; !ok || len(worker.Checks) != 1 {
		t.Errorf("worker checks = %s", asJSON(t, worker.Checks))
	}
	if len(worker.Mounts) != 0 || worker.Metrics != nil {
		t.Errorf("worker got web-only sections: mounts %v metrics %v", worker.Mounts, worker.Metrics)
	}
	if got := asJSON(t, worker.Restart); got != `{"policy":"on-failure","max_retries":3}` {
		t.Errorf("worker restart = %s", got)
	}
	// [[files]] without a filter belong to the default group only.
	if got := asJSON(t, worker.Files); got != `[{"guest_path":"/etc/secret","secret_name":"SECRET_FILE"}]` {
		t.Errorf("worker files = %s", got)
	}
	if _, err := cfg.ToMachineConfig("nope", "x"); err == nil || !strings.Contains(err.Error(), `"nope" is not defined`) {
		t.Errorf("unknown group: err = %v", err)
	}
}

func TestToMachineConfigDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`app = "a"`), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ProcessGroups(); !reflect.DeepEqual(got, []string{"app"}) {
		t.Fatalf("ProcessGroups = %v", got)
	}
	mc, err := cfg.ToMachineConfig("app", "img")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"image":"img","env":{"FLY_PROCESS_GROUP":"app"},"init":{},"guest":{"cpu_kind":"shared","cpus":1,"memory_mb":256},"metadata":{"fly_platform_version":"v2","fly_process_group":"app"}}`
	if got := asJSON(t, mc); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestToMachineConfigExperimental(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
[experimental]
  entrypoint = ["/tini", "--"]
  cmd = ["serve"]
[processes]
  app = ""
  jobs = "run jobs"
`), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := cfg.ToMachineConfig("app", "img")
	if got := asJSON(t, app.Init); got != `{"entrypoint":["/tini","--"],"cmd":["serve"]}` {
		t.Errorf("app init = %s", got)
	}
	jobs, _ := cfg.ToMachineConfig("jobs", "img")
	if got := asJSON(t, jobs.Init); got != `{"entrypoint":["/tini","--"],"cmd":["run","jobs"]}` {
		t.Errorf("jobs init = %s", got)
	}
}

func TestGuestFromVM(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		vm   VM
		want string
	}{
		{VM{}, `{"cpu_kind":"shared","cpus":1,"memory_mb":256}`},
		{VM{Size: "performance-2x"}, `{"cpu_kind":"performance","cpus":2,"memory_mb":4096}`},
		{VM{Memory: "1gb"}, `{"cpu_kind":"shared","cpus":1,"memory_mb":1024}`},
		{VM{Memory: "2048"}, `{"cpu_kind":"shared","cpus":1,"memory_mb":2048}`},
		{VM{Memory: "512MB", CPUs: 2}, `{"cpu_kind":"shared","cpus":2,"memory_mb":512}`},
		{VM{Memory: "1gb", MemoryMB: 2048}, `{"cpu_kind":"shared","cpus":1,"memory_mb":2048}`},
		{VM{GPUKind: "l40s"}, `{"cpu_kind":"performance","cpus":8,"memory_mb":32768,"gpu_kind":"l40s","gpus":1}`},
		{VM{Size: "dedicated-cpu-2x"}, `{"cpu_kind":"performance","cpus":2,"memory_mb":4096}`},
	} {
		g, err := tc.vm.Guest("")
		if err != nil {
			t.Errorf("%+v: %v", tc.vm, err)
			continue
		}
		if got := asJSON(t, g); got != tc.want {
			t.Errorf("%+v: got %s, want %s", tc.vm, got, tc.want)
		}
	}
}

func TestReleaseMachineConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
primary_region = "fra"
[deploy]
  release_command = "bin/rails db:migrate"
  [deploy.release_command_vm]
    size = "shared-cpu-4x"
`), "fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := cfg.ToReleaseMachineConfig("img")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"image":"img","env":{"FLY_PROCESS_GROUP":"fly_app_release_command","PRIMARY_REGION":"fra","RELEASE_COMMAND":"1"},"init":{"cmd":["bin/rails","db:migrate"]},"guest":{"cpu_kind":"shared","cpus":4,"memory_mb":1024},"metadata":{"fly_platform_version":"v2","fly_process_group":"fly_app_release_command"},"restart":{"policy":"no"},"auto_destroy":true,"dns":{"skip_registration":true}}`
	if got := asJSON(t, mc); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseSizes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"10": 10, "10gb": 10, "10GB": 10, "1.5gb": 1, "500gb": 500, "1tb": 1000} {
		if got, err := ParseSizeGB(in); err != nil || got != want {
			t.Errorf("ParseSizeGB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]int{"256": 256, "256mb": 256, "1gb": 1024, "1GB": 1024, "2 GiB": 2048, "4g": 4096} {
		if got, err := ParseMemoryMB(in); err != nil || got != want {
			t.Errorf("ParseMemoryMB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "lots", "-1", "10xb"} {
		if _, err := ParseSizeGB(bad); err == nil {
			t.Errorf("ParseSizeGB(%q) succeeded", bad)
		}
	}
}
