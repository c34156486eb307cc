package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/volume"
)

// cleanerEnv is a real store with apps gone and live, each with a secret,
// and a cleaner over them.
func cleanerEnv(ctx context.Context, t *testing.T) (store.Store, *apps.Service, *secrets.Store, *appCleaner) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	sec, err := secrets.Open(st, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	vols, err := volume.New(st, dir, "tst", log)
	if err != nil {
		t.Fatal(err)
	}
	as := apps.New(apps.Options{Store: st, Org: "acme"})
	v := "s3cret"
	for _, a := range []string{"gone", "live"} {
		if err := as.Ensure(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := sec.Update(ctx, a, map[string]*string{"KEY": &v}); err != nil {
			t.Fatal(err)
		}
	}
	return st, as, sec, &appCleaner{apps: as, sec: sec, vols: vols, log: log, more: func(string) {}}
}

// TestDeletedAppsAreCleaned: the cleaner subscribed to apps.Deletions
// removes a deleted app's secrets (and whatever more does), and leaves
// other apps alone.
func TestDeletedAppsAreCleaned(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, as, sec, c := cleanerEnv(ctx, t)
	var mu sync.Mutex
	removed := map[string]bool{}
	c.more = func(app string) {
		mu.Lock()
		removed[app] = true
		mu.Unlock()
	}
	deletions := apps.NewDeletions(st)
	go deletions.Run(ctx)
	deletions.Subscribe(ctx, c.clean)
	if err := as.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := removed["gone"]
		mu.Unlock()
		if ls, err := sec.List(ctx, "gone"); done && err == nil && len(ls) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deleted app's secrets were not removed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ls, err := sec.List(ctx, "live"); err != nil || len(ls) != 1 {
		t.Fatalf("secrets of the live app: %v %v", ls, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if removed["live"] {
		t.Fatal("the live app was cleaned")
	}
}

// TestAppsDeletedUnwatchedAreSwept: an app deleted while nothing watched
// (the daemon was down, or before the watch began) has its secrets
// removed by the sweep a subscriber gets first, though it has no volume.
func TestAppsDeletedUnwatchedAreSwept(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, as, sec, c := cleanerEnv(ctx, t)
	if err := as.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	c.clean(ctx, "") // the sweep
	if ls, err := sec.List(ctx, "gone"); err != nil || len(ls) != 0 {
		t.Fatalf("secrets of the app deleted unwatched: %v %v", ls, err)
	}
	if ls, err := sec.List(ctx, "live"); err != nil || len(ls) != 1 {
		t.Fatalf("secrets of the live app: %v %v", ls, err)
	}
}
