package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/store"
)

// Machine logs live in <data-dir>/logs/<app>/<id>.log, written by the
// machine's shim, which rotates the file to <id>.log.1 at the size set
// with SetLogMaxBytes. They outlive the machine (a deploy's old machines'
// output stays readable) until the LogJanitor removes them.

// logLimit is the rotation size given to machines' shims.
type logLimit struct{ atomic.Int64 }

// SetLogMaxBytes sets the size at which machines started from now on
// rotate their log file (0: never). Call it before Recover.
func (s *Supervisor) SetLogMaxBytes(n int64) { s.logMaxBytes.Store(n) }

// LogMachines returns the ids of an app's machines that have a log, in
// the order of their file names (current logs first, then those left
// only as a rotated file): existing machines and destroyed ones whose
// logs the LogJanitor has not removed yet. No logs is not an error.
func (s *Supervisor) LogMachines(app string) ([]string, error) {
	files, err := os.ReadDir(filepath.Join(s.opt.DataDir, "logs", app))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the machine logs of app %s: %w", app, err)
	}
	var ids, rotatedOnly []string
	seen := map[string]bool{}
	for _, f := range files {
		if id, ok := strings.CutSuffix(f.Name(), ".log"); ok && id != "" {
			ids = append(ids, id)
			seen[id] = true
		}
	}
	for _, f := range files {
		if id, ok := strings.CutSuffix(f.Name(), ".log.1"); ok && id != "" && !seen[id] {
			rotatedOnly = append(rotatedOnly, id)
		}
	}
	return append(ids, rotatedOnly...), nil
}

// LogJanitor removes machine logs that nobody can ask for any more: those
// of machines that no longer exist, once unwritten for Retention, and all
// of an app's logs when the app is deleted. Logs of existing machines,
// running or not, are never removed (their size is bounded by rotation).
type LogJanitor struct {
	Sup   *Supervisor
	Store store.Store
	// Retention is how long the logs of a destroyed machine are kept
	// after their last line; 0 keeps them until their app is deleted.
	Retention time.Duration
	// Interval is the time between sweeps (default: a minute, or half
	// the retention when that is shorter, at least a second); a deleted
	// app's logs go at once.
	Interval time.Duration
	Log      *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	once    sync.Once // makes deleted
	deleted chan struct{}
}

// Run sweeps every Interval and whenever AppDeleted is called, until ctx
// ends.
func (j *LogJanitor) Run(ctx context.Context) {
	interval := j.Interval
	if interval <= 0 {
		interval = min(time.Minute, max(j.Retention/2, time.Second))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := j.Sweep(ctx); err != nil && ctx.Err() == nil {
			j.log().Warn("remove old machine logs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-j.deletedCh():
		}
	}
}

// AppDeleted makes Run sweep now: an app was deleted (or deletions may
// have been missed). The daemon calls it from apps.Deletions.
func (j *LogJanitor) AppDeleted() {
	select {
	case j.deletedCh() <- struct{}{}:
	default:
	}
}

func (j *LogJanitor) deletedCh() chan struct{} {
	j.once.Do(func() { j.deleted = make(chan struct{}, 1) })
	return j.deleted
}

func (j *LogJanitor) log() *slog.Logger {
	if j.Log != nil {
		return j.Log
	}
	return slog.Default()
}

// Sweep removes the logs that are due: one step of Run.
func (j *LogJanitor) Sweep(ctx context.Context) error {
	root := filepath.Join(j.Sup.opt.DataDir, "logs")
	dirs, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list machine logs: %w", err)
	}
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	var errs []error
	for _, a := range dirs {
		if !a.IsDir() {
			continue
		}
		app := a.Name()
		dir := filepath.Join(root, app)
		// Machines before the app: a machine is created after its app,
		// so an app found missing has no machine being created.
		ms, err := j.Sup.List(ctx, app)
		if err != nil {
			return err
		}
		_, err = j.Store.Get(ctx, apps.Key(app))
		if errors.Is(err, store.ErrNotFound) && len(ms) == 0 {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, fmt.Errorf("remove the logs of deleted app %s: %w", app, err))
			} else {
				j.log().Info("removed the logs of a deleted app", "app", app)
			}
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if j.Retention <= 0 {
			continue
		}
		exists := map[string]bool{}
		for _, m := range ms {
			exists[m.ID] = true
		}
		files, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			id, ok := strings.CutSuffix(strings.TrimSuffix(f.Name(), ".1"), ".log")
			if !ok || exists[id] {
				continue
			}
			info, err := f.Info()
			if err != nil || now().Sub(info.ModTime()) < j.Retention {
				continue
			}
			if err := os.Remove(filepath.Join(dir, f.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove the log of destroyed machine %s: %w", id, err))
				continue
			}
			j.log().Debug("removed an expired machine log", "app", app, "machine", id, "file", f.Name())
		}
	}
	return errors.Join(errs...)
}
