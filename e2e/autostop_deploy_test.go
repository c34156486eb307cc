package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

const autostopConfig = `app = "asd"
primary_region = "tst"

[env]
  PORT = "8080"
  APP_VERSION = "%s"

[http_service]
  internal_port = 8080
  auto_stop_machines = "stop"
  auto_start_machines = true
  min_machines_running = 0
  [[http_service.checks]]
    interval = "1s"
    timeout = "1s"
    path = "/healthz"
`

// Autostop never breaks a deploy (issue 13 item 5): with
// auto_stop_machines, min_machines_running = 0 and a 1s autostop interval,
// deploys without traffic all succeed (autostop used to stop the new
// machine in the deploy's smoke window: "crash-looping (state stopped, 0
// restarts)"); once idle, the machine is stopped by autostop and the stop
// is recorded as autostop's.
func TestAutostopNeverBreaksADeploy(t *testing.T) {
	harness.RequireRoot(t)
	t.Setenv("HANGAR_AUTOSTOP_INTERVAL", "1s")
	d := harness.StartDaemon(t, harness.BuildBinary(t))
	ref := d.ImportTestApp()
	cfg := filepath.Join(t.TempDir(), "fly.toml")
	for i := 1; i <= 4; i++ {
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(autostopConfig, fmt.Sprintf("v%d", i))), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := d.Hangar("deploy", "-c", cfg, "--image", ref); err != nil {
			t.Fatalf("deploy v%d with autostop on: %v\n%s", i, err, out)
		}
	}
	// Idle now: autostop stops the machine, and says it did.
	harness.Poll(t, "the idle machine stopped by autostop", 60*time.Second, func() (bool, string) {
		var states []string
		for _, m := range d.Machines("asd") {
			states = append(states, m.State)
			if m.State != types.StateStopped || len(m.Events) == 0 {
				continue
			}
			ev := m.Events[0]
			if ev.Type == "stop" && ev.Source == "fly-proxy" && ev.Request["reason"] == "autostop" {
				return true, ""
			}
			return false, fmt.Sprintf("machine %s stopped, last event %+v", m.ID, ev)
		}
		return false, fmt.Sprintf("machines %v", states)
	})
}
