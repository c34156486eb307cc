package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
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
// only as rotated or archived files): existing machines and destroyed ones whose
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
		if lf, ok := logs.ParseLogFileName(f.Name()); ok && lf.Kind == "current" {
			ids = append(ids, lf.MachineID)
			seen[lf.MachineID] = true
		}
	}
	for _, f := range files {
		if lf, ok := logs.ParseLogFileName(f.Name()); ok && !seen[lf.MachineID] {
			rotatedOnly = append(rotatedOnly, lf.MachineID)
			seen[lf.MachineID] = true
		}
	}
	return append(ids, rotatedOnly...), nil
}

// LogJanitor removes machine logs by age and size, and an app's logs
// when it is deleted:
//
//   - a file whose last line is older than the app's maximum age goes;
//   - when an app's files (every machine's, current, rotated and
//     archived) take more than its maximum size, the oldest files (by
//     their last line) go until they fit.
//
// Never removed: the current file (<id>.log) of an existing machine,
// running or not, which the shim may be writing; its size is bounded by
// rotation. An app's limits are MaxAge and MaxBytes unless it has its own
// (SetLogRetention).
type LogJanitor struct {
	Sup   *Supervisor
	Store store.Store
	// MaxAge is how long a log file is kept after its last line; 0: no
	// limit by age.
	MaxAge time.Duration
	// MaxBytes is the most an app's logs may take on disk; 0: no limit
	// by size.
	MaxBytes int64
	// Interval is the time between sweeps (default: a minute, or half
	// the age when that is shorter, at least a second); a deleted app's
	// logs go at once.
	Interval time.Duration
	Log      *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Removed, when set, is told of each file removed by age or size
	// (reason "age" or "size"), for the metrics.
	Removed func(app, reason string, bytes int64)

	once    sync.Once // makes deleted
	deleted chan struct{}
}

// Run sweeps every Interval and whenever AppDeleted is called, until ctx
// ends.
func (j *LogJanitor) Run(ctx context.Context) {
	interval := j.Interval
	if interval <= 0 {
		interval = time.Minute
		if j.MaxAge > 0 {
			interval = min(interval, max(j.MaxAge/2, time.Second))
		}
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
				continue
			}
			if _, err := j.Store.Delete(ctx, logRetentionKey(app), store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, fmt.Errorf("remove the log retention of deleted app %s: %w", app, err))
			}
			j.log().Info("removed the logs of a deleted app", "app", app)
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		maxAge, maxBytes := j.MaxAge, j.MaxBytes
		var own types.LogRetention
		if _, err := store.GetJSON(ctx, j.Store, logRetentionKey(app), &own); err == nil {
			if own.MaxAgeSeconds > 0 {
				maxAge = time.Duration(own.MaxAgeSeconds) * time.Second
			}
			if own.MaxBytes > 0 {
				maxBytes = own.MaxBytes
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
		}
		exists := map[string]bool{}
		for _, m := range ms {
			exists[m.ID] = true
		}
		if err := j.trim(app, dir, exists, maxAge, maxBytes, now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// trim applies an app's limits to its log directory.
func (j *LogJanitor) trim(app, dir string, exists map[string]bool, maxAge time.Duration, maxBytes int64, now time.Time) error {
	if maxAge <= 0 && maxBytes <= 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type file struct {
		name, id string
		size     int64
		mtime    time.Time
		seq      int64 // the file's place in its machine's log
	}
	var total int64
	var removable []file
	files := map[string]int{} // log files per machine
	var counts []string       // the shims' counts of lost lines
	for _, e := range entries {
		lf, ok := logs.ParseLogFileName(e.Name())
		if !ok {
			if id, ok := strings.CutSuffix(e.Name(), ".lost"); ok {
				counts = append(counts, id)
			}
			continue
		}
		files[lf.MachineID]++
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		total += info.Size()
		if lf.Kind == "current" && exists[lf.MachineID] {
			continue
		}
		seq := int64(math.MaxInt64) // current
		switch lf.Kind {
		case "archive":
			seq = lf.Start.UnixNano()
		case "rotated":
			seq = math.MaxInt64 - 1
		}
		removable = append(removable, file{e.Name(), lf.MachineID, info.Size(), info.ModTime(), seq})
	}
	// Oldest first by the time of their last write; a machine's files
	// written within one tick of the file system's clock (equal times)
	// by their place in its log, so an older file never outlives a newer.
	sort.Slice(removable, func(a, b int) bool {
		fa, fb := removable[a], removable[b]
		if !fa.mtime.Equal(fb.mtime) {
			return fa.mtime.Before(fb.mtime)
		}
		if fa.id != fb.id {
			return fa.id < fb.id
		}
		return fa.seq < fb.seq
	})
	var errs []error
	for _, f := range removable {
		reason := ""
		switch {
		case maxAge > 0 && now.Sub(f.mtime) >= maxAge:
			reason = "age"
		case maxBytes > 0 && total > maxBytes:
			reason = "size"
		default:
			continue
		}
		if err := os.Remove(filepath.Join(dir, f.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the log file %s of app %s: %w", f.name, app, err))
			continue
		}
		total -= f.size
		files[f.id]--
		if j.Removed != nil {
			j.Removed(app, reason, f.size)
		}
		j.log().Debug("removed a machine log file", "app", app, "machine", f.id, "file", f.name, "reason", reason)
	}
	for _, id := range counts {
		if files[id] <= 0 && !exists[id] { // its logs gone: the count goes too
			_ = os.Remove(filepath.Join(dir, id+".lost"))
		}
	}
	if maxBytes > 0 && total > maxBytes {
		j.log().Warn("an app's logs are over its size limit in the files of its machines being written; they are bounded by --log-max-size each",
			"app", app, "bytes", total, "max_bytes", maxBytes)
	}
	return errors.Join(errs...)
}

// logRetentionKey is where an app's own log limits are stored.
func logRetentionKey(app string) string { return "logretention/" + app }

// LogRetention returns an app's own log limits (zero fields: the
// daemon's).
func (s *Supervisor) LogRetention(ctx context.Context, app string) (types.LogRetention, error) {
	var r types.LogRetention
	_, err := store.GetJSON(ctx, s.opt.Store, logRetentionKey(app), &r)
	if errors.Is(err, store.ErrNotFound) {
		return types.LogRetention{}, nil
	}
	if err != nil {
		return r, fmt.Errorf("read the log retention of app %s: %w", app, err)
	}
	return r, nil
}

// SetLogRetention records an app's own log limits; zero fields go back
// to the daemon's. The LogJanitor applies them at its next sweep.
func (s *Supervisor) SetLogRetention(ctx context.Context, app string, r types.LogRetention) error {
	if r.MaxAgeSeconds < 0 || r.MaxBytes < 0 {
		return fmt.Errorf("log retention of app %s: %w", app, errNegativeRetention)
	}
	if r == (types.LogRetention{}) {
		if _, err := s.opt.Store.Delete(ctx, logRetentionKey(app), store.AnyRevision); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("reset the log retention of app %s: %w", app, err)
		}
		return nil
	}
	if _, err := store.PutJSON(ctx, s.opt.Store, logRetentionKey(app), r, store.AnyRevision); err != nil {
		return fmt.Errorf("record the log retention of app %s: %w", app, err)
	}
	return nil
}

var errNegativeRetention = types.NewError(types.ErrInvalid, "max age and max size must not be negative (0: the daemon's default)")

// LogSources returns the logs of an app's machines (of every app when app
// is ""), as LogMachines lists them, with each machine's region and
// process group from its record (a machine whose record is gone gets the
// daemon's region and no group). Ordered by app, then as LogMachines.
func (s *Supervisor) LogSources(ctx context.Context, app string) ([]logs.Source, error) {
	appNames := []string{app}
	if app == "" {
		dirs, err := os.ReadDir(filepath.Join(s.opt.DataDir, "logs"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list the apps with logs: %w", err)
		}
		appNames = appNames[:0]
		for _, d := range dirs {
			if d.IsDir() {
				appNames = append(appNames, d.Name())
			}
		}
	}
	var out []logs.Source
	var errs []error
	for _, a := range appNames {
		ids, err := s.LogMachines(a)
		if err != nil {
			errs = append(errs, err)
		}
		if len(ids) == 0 {
			continue
		}
		recs, err := s.List(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		byID := map[string]*Record{}
		for _, r := range recs {
			byID[r.ID] = r
		}
		for _, id := range ids {
			src := logs.Source{App: a, MachineID: id, Region: s.opt.Region, Path: s.LogPath(a, id)}
			if r := byID[id]; r != nil {
				if r.Region != "" {
					src.Region = r.Region
				}
				if r.Config != nil {
					src.ProcessGroup = r.Config.Metadata[types.MetaProcessGroup]
				}
			}
			out = append(out, src)
		}
	}
	return out, errors.Join(errs...)
}
