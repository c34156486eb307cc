package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/logs"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestLogJanitorSweep steps the janitor with its own clock over real
// files and a real store: files go once their last line is older than
// the retention (a destroyed machine's current log too, rotated and
// archived files of an existing machine too), but never the current log
// of an existing machine; a deleted app's logs go at once.
func TestLogJanitorSweep(t *testing.T) {
	dataDir, st, sup := janitorEnv(t, "web", "gone")
	ctx := context.Background()
	putMachine(t, st, "web", "live", types.StateStopped)
	old := time.Now().Add(-time.Hour)
	live := sup.LogPath("web", "live")
	files := map[string]time.Time{
		live:        old, // exists: its current file kept however old
		live + ".1": old, // but the rotated one goes
		logs.ArchivePath(live, "2026-01-01T00:00:00.000000000Z"): old,
		sup.LogPath("web", "dead"):                               old, // destroyed, expired
		sup.LogPath("web", "dead") + ".1":                        old,
		sup.LogPath("web", "recent"):                             time.Now(), // destroyed, not yet expired
		sup.LogPath("gone", "m1"):                                time.Now(),
		filepath.Join(dataDir, "logs/web/notes.txt"):             old, // not a machine log
	}
	writeLogs(t, files)
	gone := map[string]bool{live + ".1": true, logs.ArchivePath(live, "2026-01-01T00:00:00.000000000Z"): true,
		sup.LogPath("web", "dead"): true, sup.LogPath("web", "dead") + ".1": true}
	var removed []string
	j := &LogJanitor{Sup: sup, Store: st, MaxAge: 30 * time.Minute,
		Removed: func(app, reason string, n int64) { removed = append(removed, app+"/"+reason) }}

	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for path := range files {
		if exists(path) == gone[path] {
			t.Errorf("%s: exists %v, want %v", path, exists(path), !gone[path])
		}
	}
	if len(removed) != 4 || removed[0] != "web/age" {
		t.Errorf("removals counted: %v, want 4 web/age", removed)
	}

	// An hour later the recent one has expired too; the live machine's
	// current log stays.
	j.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(sup.LogPath("web", "recent")) || !exists(live) {
		t.Fatalf("after the retention: recent kept %v, live kept %v", exists(sup.LogPath("web", "recent")), exists(live))
	}

	// Deleting an app removes its logs however fresh; Run notices the
	// deletion without waiting for its interval.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j.Interval = time.Hour
	deletions := apps.NewDeletions(st)
	go deletions.Run(rctx)
	deletions.Subscribe(rctx, func(context.Context, string) { j.AppDeleted() })
	go j.Run(rctx)
	if !exists(filepath.Join(dataDir, "logs/gone")) {
		t.Fatal("the logs of an existing app were removed")
	}
	if _, err := st.Delete(ctx, apps.Key("gone"), store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for exists(filepath.Join(dataDir, "logs/gone")) {
		if time.Now().After(deadline) {
			t.Fatal("the logs of a deleted app were not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !exists(sup.LogPath("web", "live")) {
		t.Fatal("the live machine's log went with another app")
	}
}

// TestLogMachines lists the machines with a log, current files first,
// then those left only as a rotated file; other files are not logs.
func TestLogMachines(t *testing.T) {
	dataDir := t.TempDir()
	sup := New(Options{DataDir: dataDir})
	if ids, err := sup.LogMachines("none"); err != nil || len(ids) != 0 {
		t.Fatalf("an app without logs: %v, %v", ids, err)
	}
	for _, p := range []string{
		sup.LogPath("web", "b"), sup.LogPath("web", "b") + ".1",
		sup.LogPath("web", "c"),
		sup.LogPath("web", "a") + ".1", // between the shim's rename and create
		filepath.Join(dataDir, "logs/web/notes.txt"),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := sup.LogMachines("web")
	if err != nil || strings.Join(ids, " ") != "b c a" {
		t.Fatalf("LogMachines: %q, %v; want b c a", ids, err)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// writeLogs writes a line of log to each file, with its modification time.
func writeLogs(t *testing.T, files map[string]time.Time) {
	t.Helper()
	for path, mtime := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("2024-01-01T00:00:00.000000000Z stdout hi\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogJanitorSize: an app over its size limit is trimmed oldest file
// first (by last line, across machines) until it fits, never the current
// log of an existing machine; another app under its limit is untouched;
// an app's own limit replaces the daemon's.
func TestLogJanitorSize(t *testing.T) {
	_, st, sup := janitorEnv(t, "big", "small")
	ctx := context.Background()
	putMachine(t, st, "big", "a", types.StateStarted)
	putMachine(t, st, "big", "b", types.StateStarted)
	const kib = 1 << 10
	at := func(min int) time.Time { return time.Now().Add(time.Duration(min-100) * time.Minute) }
	type f struct {
		path  string
		mtime time.Time
	}
	a, b := sup.LogPath("big", "a"), sup.LogPath("big", "b")
	// Oldest first: a's archive, b's archive, a.1, b.1, then the current
	// files, the oldest of them older than the rotated ones.
	order := []f{
		{logs.ArchivePath(a, "2026-01-01T00:00:00.000000000Z"), at(1)},
		{logs.ArchivePath(b, "2026-01-01T00:00:01.000000000Z"), at(2)},
		{a + ".1", at(3)},
		{b + ".1", at(4)},
	}
	write := func(path string, mtime time.Time, size int) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, size), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range order {
		write(x.path, x.mtime, 10*kib)
	}
	write(a, at(0), 10*kib) // current, existing: never removed
	write(b, at(5), 10*kib)
	write(sup.LogPath("small", "c"), at(0), 10*kib)
	// 60 KiB for big; a limit of 35 KiB takes the three oldest
	// removable files, a's current one being kept.
	j := &LogJanitor{Sup: sup, Store: st, MaxBytes: 35 * kib}
	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for i, x := range order {
		if exists(x.path) != (i >= 3) {
			t.Errorf("%s: exists %v, want %v", filepath.Base(x.path), exists(x.path), i >= 3)
		}
	}
	if !exists(a) || !exists(b) || !exists(sup.LogPath("small", "c")) {
		t.Fatal("a current log of an existing machine, or another app's, was removed")
	}
	// Its own limit, lower: b.1 goes too; the current files stay even
	// though they are over it.
	if err := sup.SetLogRetention(ctx, "big", types.LogRetention{MaxBytes: 5 * kib}); err != nil {
		t.Fatal(err)
	}
	if r, err := sup.LogRetention(ctx, "big"); err != nil || r.MaxBytes != 5*kib {
		t.Fatalf("LogRetention: %+v, %v", r, err)
	}
	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(b+".1") || !exists(a) || !exists(b) {
		t.Fatalf("with the app's own limit: b.1 kept %v, current files kept %v %v", exists(b+".1"), exists(a), exists(b))
	}
	if err := sup.SetLogRetention(ctx, "big", types.LogRetention{MaxBytes: -1}); err == nil {
		t.Fatal("a negative limit was accepted")
	}
}

// TestLogJanitorSizeEqualTimes: a machine's files last written within one
// tick of the file system's clock go in their log's order (an archive
// before <id>.log.1, which sorts first by name), never the newer first.
func TestLogJanitorSizeEqualTimes(t *testing.T) {
	_, st, sup := janitorEnv(t, "web")
	ctx := context.Background()
	putMachine(t, st, "web", "m", types.StateStarted)
	cur := sup.LogPath("web", "m")
	at := time.Now().Add(-time.Minute)
	older := logs.ArchivePath(cur, "2026-01-01T00:00:00.000000000Z")
	for _, p := range []string{older, cur + ".1", cur} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 1000), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	j := &LogJanitor{Sup: sup, Store: st, MaxBytes: 2500}
	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(older) || !exists(cur+".1") || !exists(cur) {
		t.Fatalf("archive kept %v, .1 kept %v: the newer file went first", exists(older), exists(cur+".1"))
	}
}

// janitorEnv is a supervisor on a real store in a temp data dir, with the
// given apps recorded (the janitor removes the logs of apps that are not).
func janitorEnv(t *testing.T, apps ...string) (string, store.Store, *Supervisor) {
	t.Helper()
	dataDir := t.TempDir()
	st, err := store.Open(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, app := range apps {
		if _, err := st.Put(context.Background(), "apps/"+app, []byte(`{}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir, st, New(Options{Store: st, DataDir: dataDir})
}
