package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// grafanaDir is the repo's grafana/ (dashboard, prometheus.yml, alerts).
var grafanaDir = filepath.Join("..", "..", "grafana")

// promtool accepts the alert rules and the example configuration, and
// the rules fire on the series they should (testdata/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: apt-get install -y prometheus")
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Join(grafanaDir, "alerts.yml")},
		{"check", "config", filepath.Join(grafanaDir, "prometheus.yml")},
		{"test", "rules", filepath.Join("testdata", "alerts_test.yml")},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Dashboard is the part of grafana/hangar-app.json the tests read.
type Dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// ReadDashboard reads grafana/hangar-app.json.
func ReadDashboard(t testing.TB, path string) Dashboard {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

// Every series a dashboard panel or an alert queries is one the daemon
// serves (by testdata/metrics.golden), so a rename cannot leave a panel
// empty unnoticed. (The e2e test evaluates the queries on a real
// Prometheus.)
func TestDashboardUsesServedSeries(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "metrics.golden"))
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(golden)), "\n") {
		f := strings.Fields(line)
		served[f[0]] = f[1]
	}
	name := regexp.MustCompile(`\b(fly|hangar)_[a-z0-9_]+`)
	check := func(where, expr string) {
		for _, n := range name.FindAllString(expr, -1) {
			base := n
			if served[n] == "" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && served[b] == "histogram" {
						base = b
					}
				}
			}
			if served[base] == "" {
				t.Errorf("%s: %s is not a series the daemon serves", where, n)
			}
		}
	}
	d := ReadDashboard(t, filepath.Join(grafanaDir, "hangar-app.json"))
	if len(d.Panels) < 15 {
		t.Fatalf("%d panels", len(d.Panels))
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			check("panel "+p.Title, tg.Expr)
		}
	}
	rules, err := os.ReadFile(filepath.Join(grafanaDir, "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "expr:") || strings.HasPrefix(strings.TrimSpace(line), "sum") || strings.HasPrefix(strings.TrimSpace(line), "/") {
			check("alerts.yml", line)
		}
	}
}
