package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// releaseCommand runs the release command in an ephemeral machine and
// streams its output; a non-zero exit fails the deploy before any machine
// changed.
func (d *Deployer) releaseCommand(ctx context.Context, app string, cfg *types.MachineConfig, timeout time.Duration, emit func(step, machine, group, format string, args ...any)) error {
	emit("release_command", "", appconfig.ReleaseCommandGroup, "running release command: %s", strings.Join(cfg.Init.Cmd, " "))
	// The deployer reads the exit code, then destroys the machine itself
	// (deferred below): the supervisor's auto_destroy would remove it
	// before the exit is read.
	run := *cfg
	run.AutoDestroy = false
	m, err := d.Sup.Create(ctx, app, &run, supervisor.CreateOptions{})
	if m == nil {
		return fmt.Errorf("release command: %w", err)
	}
	defer func() {
		if err := d.Sup.Destroy(context.Background(), app, m.ID, true); err != nil {
			d.Log.Warn("remove release command machine", "machine", m.ID, "err", err)
		}
	}()
	if err != nil {
		return fmt.Errorf("release command: %w", err)
	}
	out := logs.NewFollower(logs.Source{App: app, MachineID: m.ID, Path: d.Sup.LogPath(app, m.ID)})
	defer out.Close()
	// show passes the command's new output lines on.
	show := func() {
		lines, err := out.Next()
		if err != nil {
			d.Log.Warn("read the release command's output", "machine", m.ID, "err", err)
		}
		for _, l := range lines {
			emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "%s", l.Message)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		show()
		cur, err := d.Sup.Get(ctx, app, m.ID)
		if err != nil {
			return fmt.Errorf("release command: %w", err)
		}
		if cur.State == types.StateStopped || cur.State == types.StateFailed {
			show()
			code := exitCode(cur)
			if cur.State == types.StateFailed || code != 0 {
				return fmt.Errorf("release command failed with exit code %d; nothing was changed (its output is above and in `hangar logs --machine %s`)", code, m.ID)
			}
			emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "release command finished")
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("release command did not finish within %v (release_command_timeout); nothing was changed", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func exitCode(r *supervisor.Record) int {
	for _, e := range r.Events {
		if e.Type != "exit" {
			continue
		}
		if ev, ok := e.Request["exit_event"].(map[string]interface{}); ok {
			switch c := ev["exit_code"].(type) {
			case float64:
				return int(c)
			case int:
				return c
			}
		}
	}
	if r.State == types.StateFailed {
		return -1
	}
	return 0
}
