package export

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/appconfig"
)

func loadApp(t *testing.T, path string, count int, secrets []string) (*appconfig.Config, *App) {
	t.Helper()
	cfg, err := appconfig.Load(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	app, err := FromConfig(cfg, "registry.example.com/app:v1", count, secrets)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg, app
}

func TestFromFlyToml(t *testing.T) {
	t.Parallel()
	cfg, app := loadApp(t, "testdata/shop.fly.toml", 0, []string{"DATABASE_URL"})
	if app.Name != "shop" || app.ReleaseCommand != "bin/rails db:migrate" {
		t.Errorf("app = %q release %q", app.Name, app.ReleaseCommand)
	}
	if got := strings.Join(app.Secrets, ","); got != "DATABASE_URL,TLS_KEY" {
		t.Errorf("secrets = %s, want the flag's and the [[files]] secret", got)
	}
	plan, err := Build(app, Options{Image: "registry.example.com/shop:v1"})
	if err != nil {
		t.Fatal(err)
	}
	// web: shared-cpu-2x with 1GB → 2 × 0.25 = 0.5 vCPU → Fargate 512 / 1024.
	// worker: performance-1x (1 CPU, 2GB) → 1024 / 2048.
	sizes := map[string]string{}
	for _, td := range plan.TaskDefs {
		sizes[td.Group] = td.Input.CPU + "/" + td.Input.Memory
	}
	if sizes["web"] != "512/1024" || sizes["worker"] != "1024/2048" {
		t.Errorf("task sizes = %v", sizes)
	}
	// http_service → 80 (redirect) and 443 (forward); the worker's raw TCP
	// port 9090 cannot go on an ALB and is reported.
	var ports []int
	for _, l := range plan.Listeners {
		ports = append(ports, l.Port)
		if l.Port == 80 && (l.DefaultActions[0].Type != "redirect" || l.DefaultActions[0].RedirectConfig.Protocol != "HTTPS") {
			t.Errorf("port 80 does not redirect to HTTPS: %+v", l.DefaultActions)
		}
		if l.Port == 443 && l.DefaultActions[0].Type != "forward" {
			t.Errorf("port 443 does not forward: %+v", l.DefaultActions)
		}
	}
	if len(ports) != 2 {
		t.Errorf("listeners on %v, want 80 and 443", ports)
	}
	tg := plan.TargetGroups[0].Input
	if tg.HealthCheckPath != "/up" || tg.HealthCheckIntervalSeconds != 10 || tg.HealthCheckTimeoutSeconds != 2 || tg.Port != 3000 {
		t.Errorf("target group health check = %+v", tg)
	}
	if g := plan.Services[0].HealthCheckGracePeriodSeconds; g == nil || *g != 20 {
		t.Errorf("grace period = %v, want 20", g)
	}
	if plan.Release == nil || strings.Join(plan.Release.Input.ContainerDefinitions[0].Command, " ") != "bin/rails db:migrate" {
		t.Errorf("release task = %+v", plan.Release)
	}
	hasReleaseEnv := false
	for _, kv := range plan.Release.Input.ContainerDefinitions[0].Environment {
		hasReleaseEnv = hasReleaseEnv || kv == KeyValue{Name: "RELEASE_COMMAND", Value: "1"}
	}
	if !hasReleaseEnv {
		t.Error("release task lacks RELEASE_COMMAND=1")
	}
	web := plan.TaskDefs[0].Input.ContainerDefinitions[0]
	if strings.Join(web.Command, " ") != "bin/rails server -b 0.0.0.0" || web.StopTimeout != 20 {
		t.Errorf("web container = command %v stopTimeout %d", web.Command, web.StopTimeout)
	}
	keys := map[string]bool{}
	for _, w := range plan.Warnings {
		keys[w.Key] = true
	}
	for _, k := range []string{"mounts[0]", "statics[0]", "files[0]", "services[0].auto_stop_machines", "services[0].ports[0]", "fly-replay", "regions", "kill_signal"} {
		if !keys[k] {
			t.Errorf("no warning for %s; got %v", k, plan.Warnings)
		}
	}
	sizesGB, err := VolumeSizesGB(cfg, app.Groups[0])
	if err != nil || len(sizesGB) != 1 || sizesGB[0] != 5 {
		t.Errorf("volume sizes = %v, %v; want [5]", sizesGB, err)
	}
}

// Every real fly.toml the appconfig package collected must export to
// inputs that botocore accepts and to templates that pass the allow-list
// checks, or fail with a clear error (GPU machines have no Fargate size;
// templated app names are refused).
func TestRealFlyTomlsExport(t *testing.T) {
	files, _ := filepath.Glob("../appconfig/testdata/real/*.toml")
	files = append(files, "testdata/shop.fly.toml")
	if len(files) < 2 {
		t.Skip("no real fly.toml fixtures found")
	}
	al := loadAllowList(t)
	botocoreWhy := botocoreMissing()
	var docs []any
	exported := 0
	for _, f := range files {
		cfg, err := appconfig.Load(f)
		if err != nil {
			continue // not ours to judge: appconfig's tests cover bad files
		}
		if cfg.AppName == "" {
			cfg.AppName = "unnamed"
		}
		app, err := FromConfig(cfg, "registry.example.com/app:v1", 0, []string{"SECRET_KEY"})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		plan, err := Build(app, Options{Image: "registry.example.com/app:v1"})
		if err != nil {
			// Refusals with a reason are fine: GPUs have no Fargate size, and
			// a placeholder like "{APP_NAME}" is not an app name.
			if strings.Contains(err.Error(), "GPU") || strings.Contains(err.Error(), "app name") {
				continue
			}
			t.Errorf("%s: %v", f, err)
			continue
		}
		exported++
		for _, td := range plan.TaskDefs {
			var size FargateSize
			fmt.Sscan(td.Input.CPU, &size.CPU)
			fmt.Sscan(td.Input.Memory, &size.MemoryMB)
			if !ValidFargate(size) {
				t.Errorf("%s: group %s: %s/%s is not a Fargate size", f, td.Group, td.Input.CPU, td.Input.Memory)
			}
		}
		docs = append(docs, plan.ECSJSON())
		cfn, err := plan.CloudFormation()
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, errs := checkCFN(t, cfn, al); len(errs) > 0 {
			t.Errorf("%s: cloudformation: %v", f, errs)
		}
		if _, errs := checkTF(t, plan.Terraform(), al); len(errs) > 0 {
			t.Errorf("%s: terraform: %v", f, errs)
		}
	}
	if botocoreWhy != "" {
		t.Log("AWS parameter validation skipped: " + botocoreWhy)
	} else if out, err := runBotocore(t, docs...); err != nil {
		t.Errorf("botocore rejected some inputs: %v\n%s", err, out)
	}
	if exported < 2 {
		t.Errorf("only %d configs exported", exported)
	}
	t.Logf("exported %d of %d fly.toml files", exported, len(files))
}
