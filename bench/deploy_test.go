package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
)

const deployConfig = `app = "bd"
primary_region = "tst"
kill_signal = "SIGTERM"
kill_timeout = "5s"
[env]
  PORT = "8080"
  APP_VERSION = "%d"
[http_service]
  internal_port = 8080
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// BenchmarkDeploy deploys a 3-machine app with a prebuilt image once per
// strategy under continuous load (32 keep-alive workers through the proxy)
// and prints wall time, requests sent and requests failed side by side.
// flyctl's fixed smoke-check waits alone exceed 30 s for 3 machines.
func BenchmarkDeploy(b *testing.B) {
	harness.RequireRoot(b)
	d := harness.StartDaemon(b, harness.BuildBinary(b))
	ref := d.ImportTestApp()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "fly.toml")
	write := func(v int) {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(deployConfig, v)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write(0)
	if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
		b.Fatalf("first deploy: %v\n%s", err, out)
	}
	if out, err := d.Hangar("scale", "count", "3", "-a", "bd"); err != nil {
		b.Fatalf("scale: %v\n%s", err, out)
	}
	type row struct {
		strategy     string
		took         time.Duration
		sent, failed int64
	}
	var rows []row
	for i, s := range []string{"rolling", "bluegreen", "canary", "immediate"} {
		write(i + 1)
		l := d.StartLoad("bd", 32)
		start := time.Now()
		out, err := d.Hangar("deploy", "-c", cfg, "--image", ref, "--strategy", s)
		took := time.Since(start)
		sent, failed, _ := l.Finish()
		if err != nil {
			b.Fatalf("%s deploy: %v\n%s", s, err, out)
		}
		rows = append(rows, row{s, took, sent, failed})
	}
	fmt.Printf("\nDeploy of 3 machines under load (32 workers), prebuilt image:\n%-10s %10s %10s %8s\n", "strategy", "wall", "requests", "failed")
	for _, r := range rows {
		fmt.Printf("%-10s %10s %10d %8d\n", r.strategy, r.took.Round(time.Millisecond), r.sent, r.failed)
		b.ReportMetric(r.took.Seconds(), r.strategy+"-s")
	}
	fmt.Println("(target: rolling under 3 s with 0 failures; immediate drops capacity by design)")
}
