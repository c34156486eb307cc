package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// releaseCommand runs the release command in an ephemeral machine and
// streams its output; a non-zero exit fails the deploy before any machine
// changed.
func (d *Deployer) releaseCommand(ctx context.Context, app string, cfg *types.MachineConfig, timeout time.Duration, emit func(step, machine, group, format string, args ...any)) error {
	emit("release_command", "", appconfig.ReleaseCommandGroup, "running release command: %s", strings.Join(cfg.Init.Cmd, " "))
	m, err := d.Sup.Create(ctx, app, cfg, supervisor.CreateOptions{})
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
	tail := newTailer(d.Sup.LogPath(app, m.ID))
	defer tail.close()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range tail.lines() {
			emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "%s", line)
		}
		cur, err := d.Sup.Get(ctx, app, m.ID)
		if err != nil {
			return fmt.Errorf("release command: %w", err)
		}
		if cur.State == types.StateStopped || cur.State == types.StateFailed {
			for _, line := range tail.lines() {
				emit("release_command", m.ID, appconfig.ReleaseCommandGroup, "%s", line)
			}
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
