package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

const metricsConfig = `app = "mon"
primary_region = "tst"
[env]
  PORT = "8080"
  APP_VERSION = "%s"
[processes]
  web = "/app"
  huge = "/app"
  hang = "/app"
[[mounts]]
  source = "data"
  destination = "/data"
  processes = ["hang"]
[http_service]
  internal_port = 8080
  processes = ["web"]
  auto_start_machines = true
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
[[metrics]]
  port = 8080
  path = "/metrics"
  processes = ["web"]
[[metrics]]
  port = 8080
  path = "/metrics/huge"
  processes = ["huge"]
[[metrics]]
  port = 8080
  path = "/metrics/hang"
  processes = ["hang"]
`

// TestMetricsDashboard: a real Prometheus scrapes a real daemon while an
// app with a volume and [[metrics]] per process group is deployed twice,
// the second time under load, and woken from stopped (the volume is on a
// group the proxy does not serve: a woken machine would hold it while the
// deploy replaces it); then every query of every panel of
// grafana/hangar-app.json, evaluated by that Prometheus, has a result
// (a number, not NaN). The app's own series arrive with its labels, an
// endpoint that answers 20 MB or hangs is cut off and counted, and the
// alert rules load.
func TestMetricsDashboard(t *testing.T) {
	harness.RequireRoot(t)
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed: apt-get install -y prometheus")
	}
	for _, b := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: apt-get install -y e2fsprogs util-linux", b)
		}
	}
	d := harness.StartDaemonWith(t, harness.BuildBinary(t), "--app-metrics-interval", "1s", "--app-metrics-timeout", "2s", "--autostop-interval", "0")
	if d.Metrics == "" {
		t.Fatal("the daemon wrote no metrics-addr")
	}
	cleanupVolumes(t, d, "mon")
	promURL := startPrometheus(t, prom, strings.TrimPrefix(d.Metrics, "http://"))

	ref := d.ImportTestApp()
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	deploy := func(version string) {
		t.Helper()
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(metricsConfig, version)), 0o644); err != nil {
			t.Fatal(err)
		}
		hangarOK(t, d, "deploy", "-c", cfg, "--image", ref)
	}
	hangarOK(t, d, "apps", "create", "mon")
	hangarOK(t, d, "volumes", "create", "data", "--size-mb", "64", "-a", "mon")
	deploy("1")
	load := d.StartLoad("mon", 4)
	deploy("2") // a rolling deploy under load
	finishLoad(t, load, "load during the deploy")
	// A cold start: the web machine stopped, a request wakes it.
	web := webMachine(t, d)
	hangarOK(t, d, "machine", "stop", web.ID, "-a", "mon")
	harness.Poll(t, "web machine woken by a request", 30*time.Second, func() (bool, string) {
		code, body, err := d.ViaProxy("mon", "/")
		return code == 200, fmt.Sprint(code, body, err)
	})
	web = webMachine(t, d)
	load = d.StartLoad("mon", 4) // traffic while the panels are read

	// Every panel's queries, as Grafana would send them.
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "grafana", "hangar-app.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	subst := strings.NewReplacer("$__rate_interval", "15s", "${app}", "mon", "$app", "mon")
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := subst.Replace(tg.Expr)
			queries++
			harness.Poll(t, fmt.Sprintf("panel %q: %s", p.Title, q), 60*time.Second, func() (bool, string) {
				n, why := promQuery(t, promURL, q)
				return n > 0, why
			})
		}
	}
	// The recent history the web dashboard reads, through the API.
	harness.Poll(t, "the app's recent history has traffic", 60*time.Second, func() (bool, string) {
		var h types.MetricsHistory
		if err := d.Get("/v1/apps/mon/metrics", &h); err != nil {
			return false, err.Error()
		}
		for _, p := range h.Points {
			if p.RequestsPS > 0 && p.P99Seconds > 0 && p.MemoryBytes > 0 && p.Running >= 1 {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", h)
	})
	finishLoad(t, load, "load while the panels were read")
	t.Logf("%d panels, %d queries, all with results", len(dash.Panels), queries)

	// The values are the machine's own: read from its cgroup and its
	// network namespace, and counted by the proxy.
	for _, q := range []string{
		`fly_instance_memory_mem_total{app="mon", instance="%[1]s"} - fly_instance_memory_mem_available{app="mon", instance="%[1]s"} > 0`,
		`fly_instance_memory_mem_total{app="mon", instance="%[1]s"} <= 4294967296`,
		`fly_instance_net_recv_bytes{app="mon", instance="%[1]s", device="eth0"} > 10000`,
		`fly_instance_cpu{app="mon", instance="%[1]s", mode="user"} > 0`,
		`hangar_instance_pids{app="mon", instance="%[1]s"} > 0`,
		`fly_instance_up{app="mon", instance="%[1]s"} == 1`,
		`sum(fly_app_http_responses_count{app="mon", instance="%[1]s", status="200"}) > 100`,
		`fly_edge_data_out{app="mon"} > 100000`,
		`sum(hangar_machine_start_seconds_count{app="mon", from="stopped", trigger="wake"}) >= 1`,
		`sum(hangar_deploy_duration_seconds_count{app="mon", outcome="complete"}) == 2`,
	} {
		q := strings.ReplaceAll(q, "%[1]s", web.ID)
		harness.Poll(t, q, 30*time.Second, func() (bool, string) {
			n, why := promQuery(t, promURL, q)
			return n == 1, why
		})
	}

	// The app's own series, with its labels (its spoofed region replaced).
	harness.Poll(t, "the app's series", 30*time.Second, func() (bool, string) {
		n, why := promQuery(t, promURL, fmt.Sprintf(`testapp_hits_total{app="mon", instance=%q, region="tst", path="/"}`, web.ID))
		return n == 1, why
	})
	// The 20 MB and the hanging endpoints are cut off and counted.
	for _, reason := range []string{"too_large", "timeout"} {
		harness.Poll(t, "scrape failures: "+reason, 30*time.Second, func() (bool, string) {
			n, why := promQuery(t, promURL, fmt.Sprintf(`sum(hangar_app_metrics_scrape_failures_count{app="mon", reason=%q}) > 0`, reason))
			return n == 1, why
		})
	}
	if n, why := promQuery(t, promURL, `testapp_filler`); n != 0 {
		t.Fatalf("series of the cut-off 20 MB answer were kept: %s", why)
	}
	// The alert rules loaded, and none fired (everything is healthy).
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, promURL+"/api/v1/rules", &rules)
	loaded := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			loaded++
			if r.Health == "err" {
				t.Errorf("rule %s: health %s", r.Name, r.Health)
			}
		}
	}
	if loaded < 3 {
		t.Fatalf("%d alert rules loaded", loaded)
	}
	if n, why := promQuery(t, promURL, `ALERTS{alertname="HangarMachineDown", app="mon"}`); n != 0 {
		t.Errorf("machine down alert for a healthy app: %s", why)
	}
	// A machine that exits 3 and is not restarted is down: its exit code
	// is a series, and the machine-down alert goes pending on it.
	hangarOK(t, d, "apps", "create", "crash")
	hangarOK(t, d, "machine", "run", ref, "exit", "3", "--restart", "no", "-a", "crash")
	for _, q := range []string{
		`fly_instance_up{app="crash"} == 0`,
		`fly_instance_exit_code{app="crash"} == 3`,
		`fly_instance_exit_oom{app="crash"} == 0`,
		`ALERTS{alertname="HangarMachineDown", app="crash"}`,
	} {
		harness.Poll(t, q, 60*time.Second, func() (bool, string) {
			n, why := promQuery(t, promURL, q)
			return n == 1, why
		})
	}

	// A reload hands the metrics listener over with the others.
	d.Reload()
	harness.Poll(t, "metrics served by the reloaded daemon", 30*time.Second, func() (bool, string) {
		resp, err := http.Get(d.Metrics + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), `fly_instance_up{app="mon",instance="`+web.ID+`"`), resp.Status
	})
}

// webMachine is the started machine of the web group of app mon.
func webMachine(t *testing.T, d *harness.Daemon) types.Machine {
	t.Helper()
	var m types.Machine
	harness.Poll(t, "web machine started", 30*time.Second, func() (bool, string) {
		for _, x := range d.Machines("mon") {
			if x.Config.Metadata[types.MetaProcessGroup] == "web" && x.State == types.StateStarted {
				m = x
				return true, ""
			}
		}
		return false, "none"
	})
	return m
}

// startPrometheus runs Debian's prometheus on a free port, scraping the
// daemon every second with grafana/alerts.yml loaded, until the test ends.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
scrape_configs:
  - job_name: hangar
    honor_labels: true
    static_configs:
      - targets: [%q]
`, filepath.Join(harness.RepoRoot(), "grafana", "alerts.yml"), target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("prometheus log:\n%s", b)
		}
		logf.Close()
	})
	u := "http://" + addr
	harness.Poll(t, "prometheus ready", 30*time.Second, func() (bool, string) {
		resp, err := http.Get(u + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	harness.Poll(t, "prometheus scrapes the daemon", 30*time.Second, func() (bool, string) {
		n, why := promQuery(t, u, `up{job="hangar"} == 1`)
		return n == 1, why
	})
	return u
}

// promQuery evaluates an instant query and returns how many series have
// a number (not NaN) as value, and the answer for a failure message.
func promQuery(t *testing.T, base, q string) (int, string) {
	t.Helper()
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	body := getJSON(t, base+"/api/v1/query?query="+url.QueryEscape(q), &res)
	if res.Status != "success" {
		t.Fatalf("query %s: %s %s", q, res.Status, res.Error)
	}
	n := 0
	for _, r := range res.Data.Result {
		if len(r.Value) == 2 {
			s, _ := r.Value[1].(string)
			if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) {
				n++
			}
		}
	}
	return n, body
}

func getJSON(t *testing.T, u string, out any) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
	return string(b)
}
