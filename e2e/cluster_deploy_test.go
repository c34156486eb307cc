package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

const clusterDeployConfig = `app = "dx"
primary_region = "fra"
kill_signal = "SIGTERM"
kill_timeout = "5s"

[env]
  PORT = "8080"
  APP_VERSION = "%s"

[deploy]
  wait_timeout = "30s"

[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "500ms"
    timeout = "1s"
    path = "/healthz"
`

// TestClusterDeployAcrossHosts: an app with a machine on each of a, b
// (fra) and c (iad), deployed through a with every strategy. Rolling,
// canary and blue-green run under a load loop through each host's own
// proxy and drop no request: each new machine is made in its old one's
// region, on its host, and the old one leaves its host's proxy only once
// the new one is healthy there; rolling goes region by region, fra (the
// primary) first. Immediate replaces all three too. After each deploy the
// app has one machine of the new release on each host and nothing else.
func TestClusterDeployAcrossHosts(t *testing.T) {
	c, ref := startFailoverCluster(t, "/hangar/dx/")
	a, b, hc := c.Host("a"), c.Host("b"), c.Host("c")
	dir := t.TempDir()
	write := func(version string) string {
		p := filepath.Join(dir, "fly.toml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf(clusterDeployConfig, version)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out, err := a.CLI("deploy", "-c", write("v1"), "--image", ref); err != nil {
		t.Fatalf("deploy v1: %v\n%s", err, out)
	}
	if out, err := a.CLI("scale", "count", "1", "--region", "iad", "-a", "dx"); err != nil {
		t.Fatalf("scale count 1 --region iad: %v\n%s", err, out)
	}
	if out, err := a.CLI("scale", "count", "2", "--region", "fra", "-a", "dx"); err != nil {
		t.Fatalf("scale count 2 --region fra: %v\n%s", err, out)
	}
	// onEachHost checks that the app has one started machine of version
	// on each host, in the host's region, and nothing else.
	onEachHost := func(version string) {
		t.Helper()
		ms := a.Machines("dx")
		var got []string
		for _, m := range ms {
			got = append(got, fmt.Sprintf("%s/%s/%s/%s", m.HostID, m.Region, m.State, m.Config.Env["APP_VERSION"]))
		}
		sort.Strings(got)
		want := []string{"a/fra/started/" + version, "b/fra/started/" + version, "c/iad/started/" + version}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("machines of dx (host/region/state/version): %v, want %v", got, want)
		}
	}
	onEachHost("v1")
	hosts := []*harness.Host{a, b, hc}
	for _, h := range hosts {
		harness.Poll(t, "dx served by host "+h.Name+"'s proxy", 20*time.Second, func() (bool, string) {
			code, body, err := h.ViaProxy("dx", "/")
			return code == 200 && strings.Contains(body, "version=v1"), fmt.Sprint(code, body, err)
		})
	}

	for i, strategy := range []string{"rolling", "canary", "bluegreen", "immediate"} {
		version := fmt.Sprintf("v%d", i+2)
		var loads []*harness.Load
		if strategy != "immediate" { // immediate stops every machine at once, by design
			for _, h := range hosts {
				loads = append(loads, h.StartLoad("dx", 4))
			}
		}
		start := time.Now()
		out, err := a.CLI("deploy", "-c", write(version), "--image", ref, "--strategy", strategy)
		took := time.Since(start)
		for j, l := range loads {
			finishLoad(t, l, fmt.Sprintf("%s deploy, through host %s's proxy", strategy, hosts[j].Name))
		}
		if err != nil {
			t.Fatalf("%s deploy: %v\n%s", strategy, err, out)
		}
		t.Logf("%s deploy across 3 hosts took %v", strategy, took.Round(time.Millisecond))
		onEachHost(version)
		if strategy == "rolling" {
			fra, iad := strings.Index(out, "region fra:"), strings.Index(out, "region iad:")
			if fra < 0 || iad < 0 || fra > iad {
				t.Errorf("rolling deploy: want region fra (primary) before iad in its progress:\n%s", out)
			}
		}
	}

	var rels []struct {
		Version int    `json:"version"`
		Status  string `json:"status"`
	}
	if err := a.Get("/v1/apps/dx/releases", &rels); err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		if r.Status != "complete" {
			t.Errorf("release v%d is %s, want complete", r.Version, r.Status)
		}
	}
	if len(rels) < 5 {
		t.Errorf("%d releases, want at least 5 (v1 and a deploy per strategy)", len(rels))
	}
}
