package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// Scheduler starts scheduled machines (config.schedule, Fly's scheduled
// machines): once per interval a stopped machine is started and runs to
// its exit; in between it stays stopped. Run calls Tick every Interval;
// tests call Tick with their own time.
//
// A run is due when the schedule's next time after the machine's last
// scheduled run (or, before its first, its creation) has come. The run's
// time is written to the record (LastRunAt) before the machine starts,
// under the store's compare-and-swap: a daemon restarted in the same
// interval, or a second scheduler on the same store, sees it and does not
// start the machine again. A daemon that dies between the write and the
// start loses that run rather than running it twice. Runs missed while
// the daemon was down are made up by one run, not one per interval.
//
// Each run shows in the machine's events (a "start" with source
// "scheduler", then its "exit" with the exit code); its output is in the
// machine's log (`hangar logs`).
type Scheduler struct {
	Sup      *Supervisor
	Interval time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	Log *slog.Logger
}

// errNotDue aborts the record update of a run that is no longer due.
var errNotDue = errors.New("scheduled run not due")

// sourceScheduler is the event source of the scheduler's starts.
const sourceScheduler = "scheduler"

// Run starts due machines every Interval until ctx ends.
func (sc *Scheduler) Run(ctx context.Context) {
	every(ctx, sc.Interval, func() {
		now := time.Now
		if sc.Now != nil {
			now = sc.Now
		}
		if _, err := sc.Tick(ctx, now()); err != nil && ctx.Err() == nil {
			sc.log().Warn("scheduled machines", "err", err)
		}
	})
}

// every calls step every interval (none: never) until ctx ends; the
// background loops (autostop, the scheduler) are one steppable Tick each.
func every(ctx context.Context, interval time.Duration, step func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			step()
		}
	}
}

func (sc *Scheduler) log() *slog.Logger {
	if sc.Log == nil {
		return slog.Default()
	}
	return sc.Log
}

// nextRun is when a scheduled machine runs next: the zero time for a
// machine without a (valid) schedule or one being destroyed.
func nextRun(r *Record) time.Time {
	if r.Config == nil || r.Config.Schedule == "" || r.State == types.StateDestroying || r.State == types.StateDestroyed {
		return time.Time{}
	}
	sched, err := types.ParseSchedule(r.Config.Schedule)
	if err != nil {
		return time.Time{}
	}
	base, err := time.Parse(time.RFC3339Nano, r.LastRunAt)
	if err != nil {
		if base, err = time.Parse(time.RFC3339, r.CreatedAt); err != nil {
			return time.Time{}
		}
	}
	return sched.Next(base)
}

// due reports whether the scheduler should start r at now: it has a run
// due, and is not running or being changed (a machine still running at
// its next interval is not started twice; it runs when it has stopped).
func due(r *Record, now time.Time) bool {
	switch r.State {
	case types.StateCreated, types.StateStopped, types.StateFailed:
	default:
		return false
	}
	next := nextRun(r)
	return !next.IsZero() && !next.After(now)
}

// Tick starts the scheduled machines due at now and returns their ids.
// An error starting one is logged and does not stop the others (the run
// counts: it is tried again at the next interval, not every tick).
func (sc *Scheduler) Tick(ctx context.Context, now time.Time) ([]string, error) {
	s := sc.Sup
	recs, err := s.ListLocal(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	var started []string
	for _, r := range recs {
		if !due(r, now) {
			continue
		}
		ok, err := sc.run(ctx, r.App, r.ID, now)
		if err != nil {
			sc.log().Warn("scheduled run failed to start", "app", r.App, "machine", r.ID, "err", err)
			continue
		}
		if ok {
			started = append(started, r.ID)
		}
	}
	return started, nil
}

// run records the run of one machine at now and starts it, if it is
// still due once its lifecycle lock is held.
func (sc *Scheduler) run(ctx context.Context, app, id string, now time.Time) (bool, error) {
	s := sc.Sup
	l := s.liveFor(app, id)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := s.update(ctx, app, id, func(r *Record) error {
		if !due(r, now) {
			return errNotDue // started, or run, meanwhile: nothing to write
		}
		r.LastRunAt = now.UTC().Format(time.RFC3339Nano)
		return nil
	})
	if errors.Is(err, errNotDue) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	sc.log().Info("scheduled run", "app", app, "machine", id)
	if _, err := s.startLocked(ctx, l, sourceScheduler); err != nil {
		return true, err
	}
	return true, nil
}
