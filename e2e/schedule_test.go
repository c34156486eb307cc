package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestScheduledMachine: a machine created through the API with a schedule
// (a cron expression, every minute) and skip_launch is started by the
// daemon's scheduler, runs to its exit, and stays stopped; the run shows
// in its events with its exit code, its output in its log, and
// `hangar machine list` shows the last and next run.
func TestScheduledMachine(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.BuildBinary(t)
	d := harness.StartDaemonWith(t, bin, "--schedule-interval", "1s")
	ref := d.ImportTestApp()
	if code, body := d.Call("POST", "/v1/apps", types.CreateAppRequest{AppName: "cron"}); code != http.StatusCreated {
		t.Fatalf("create app: %d %s", code, body)
	}
	c := &flyClient{t: t, base: d.API, token: d.Token}
	if r := c.call("POST", "/apps/cron/machines", map[string]any{"config": types.MachineConfig{Image: ref, Schedule: "every minute"}}, nil); r.code != 400 {
		t.Errorf("a bad schedule: %d %s, want 400", r.code, r.body)
	}
	cfg := types.MachineConfig{Image: ref, Init: types.MachineInit{Cmd: []string{"exit", "4"}}, Schedule: "* * * * *",
		Restart: &types.MachineRestart{Policy: types.RestartNo}}
	var m types.Machine
	c.must(200, "POST", "/apps/cron/machines", map[string]any{"config": cfg, "skip_launch": true}, nil).decode(t, &m)
	if m.State != types.StateCreated || m.NextRunAt == "" {
		t.Fatalf("created: state %s next_run_at %q", m.State, m.NextRunAt)
	}
	var cur types.Machine
	harness.Poll(t, "the scheduler runs the machine to its exit", 75*time.Second, func() (bool, string) {
		cur = types.Machine{}
		_ = d.Get("/v1/apps/cron/machines/"+m.ID, &cur)
		var started, exited bool
		for _, ev := range cur.Events {
			if ev.Type == "start" && ev.Source == "scheduler" {
				started = true
			}
			if ev.Type == "exit" {
				exit, _ := ev.Request["exit_event"].(map[string]any)
				exited = fmt.Sprint(exit["exit_code"]) == "4"
			}
		}
		return started && exited && cur.State == types.StateStopped, fmt.Sprintf("%s %+v", cur.State, cur.Events)
	})
	if cur.LastRunAt == "" || cur.NextRunAt == "" {
		t.Errorf("after a run: last_run_at %q next_run_at %q", cur.LastRunAt, cur.NextRunAt)
	}
	out, err := d.Hangar("machine", "list", "-a", "cron")
	if err != nil || !strings.Contains(out, "LAST RUN") || !strings.Contains(out, "* * * * *") || !strings.Contains(out, cur.NextRunAt) {
		t.Errorf("machine list: %v\n%s", err, out)
	}
	// The CLI's form: hangar machine run IMAGE --schedule; a bad schedule
	// is refused with a hint.
	out, err = d.Hangar("machine", "run", ref, "exit", "0", "--schedule", "daily", "--restart", "no", "-a", "cron")
	if err != nil || !strings.Contains(out, "next run at") {
		t.Errorf("machine run --schedule daily: %v\n%s", err, out)
	}
	if out, err := d.Hangar("machine", "run", ref, "--schedule", "every day", "-a", "cron"); err == nil || !strings.Contains(out, "cron expression") {
		t.Errorf("machine run --schedule 'every day': %v, want a hint\n%s", err, out)
	}
	out, err = d.Hangar("logs", "-a", "cron")
	if err != nil || !strings.Contains(out, "exiting with 4") {
		t.Errorf("logs of the run: %v\n%s", err, out)
	}
}
