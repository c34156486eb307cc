package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestLogJanitorSweep steps the janitor with its own clock over real
// files and a real store: a destroyed machine's logs go once untouched for
// the retention, an existing machine's never, a deleted app's at once.
func TestLogJanitorSweep(t *testing.T) {
	dataDir := t.TempDir()
	st, err := store.Open(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	sup := New(Options{Store: st, DataDir: dataDir})
	for _, app := range []string{"web", "gone"} {
		if _, err := st.Put(ctx, "apps/"+app, []byte(`{}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	putMachine(t, st, "web", "live", types.StateStopped)
	old := time.Now().Add(-time.Hour)
	files := map[string]time.Time{
		sup.LogPath("web", "live"):                   old, // exists: kept however old
		sup.LogPath("web", "live") + ".1":            old,
		sup.LogPath("web", "dead"):                   old, // destroyed, expired
		sup.LogPath("web", "dead") + ".1":            old,
		sup.LogPath("web", "recent"):                 time.Now(), // destroyed, not yet expired
		sup.LogPath("gone", "m1"):                    time.Now(),
		filepath.Join(dataDir, "logs/web/notes.txt"): old, // not a machine log
	}
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
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	j := &LogJanitor{Sup: sup, Store: st, Retention: 30 * time.Minute}

	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for path := range files {
		want := path != sup.LogPath("web", "dead") && path != sup.LogPath("web", "dead")+".1"
		if exists(path) != want {
			t.Errorf("%s: exists %v, want %v", path, exists(path), want)
		}
	}

	// An hour later the recent one has expired too; the live machine's
	// logs stay.
	j.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if err := j.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if exists(sup.LogPath("web", "recent")) || !exists(sup.LogPath("web", "live")) || !exists(sup.LogPath("web", "live")+".1") {
		t.Fatalf("after the retention: recent kept %v, live kept %v", exists(sup.LogPath("web", "recent")), exists(sup.LogPath("web", "live")))
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
