package deploy

import (
	"context"
	"errors"
	"testing"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/store"
)

// TestDeleteApp: deleting an app destroys its machines and removes its
// record, releases, deploy progress record and destroyed machines'
// records, and nothing of an app whose name it prefixes.
func TestDeleteApp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	as := apps.New(apps.Options{Store: e.st, Org: "acme"})
	e.d.Apps = as
	for _, app := range []string{testApp, testApp + "2"} {
		if err := as.Ensure(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
	e.mustDeploy("v2", Request{}) // v1's machines destroyed: remembered as such
	if ds, err := e.sup.ListDestroyed(ctx, testApp); err != nil || len(ds) == 0 {
		t.Fatalf("destroyed machines before: %d, %v", len(ds), err)
	}
	if _, err := e.st.Get(ctx, releaseKey(testApp, 2)); err != nil {
		t.Fatalf("release v2 before: %v", err)
	}
	// A run cut short, and another app's records under longer names.
	for _, k := range []string{runKey(testApp), runKey(testApp + "2"), releaseKey(testApp+"2", 1)} {
		if _, err := e.st.Put(ctx, k, []byte(`{}`), store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}

	if err := e.d.DeleteApp(ctx, testApp); err != nil {
		t.Fatalf("DeleteApp: %v", err)
	}
	if ms, err := e.sup.List(ctx, testApp); err != nil || len(ms) != 0 {
		t.Errorf("machines after: %d, %v", len(ms), err)
	}
	if ds, err := e.sup.ListDestroyed(ctx, testApp); err != nil || len(ds) != 0 {
		t.Errorf("destroyed machines remembered after: %d, %v", len(ds), err)
	}
	for _, k := range []string{apps.Key(testApp), runKey(testApp), releaseKey(testApp, 1), releaseKey(testApp, 2)} {
		if _, err := e.st.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after the app's deletion: %v", k, err)
		}
	}
	for _, k := range []string{apps.Key(testApp + "2"), runKey(testApp + "2"), releaseKey(testApp+"2", 1)} {
		if _, err := e.st.Get(ctx, k); err != nil {
			t.Errorf("another app's %s: %v", k, err)
		}
	}
	if err := e.d.DeleteApp(ctx, testApp); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("deleting it again: %v, want apps.ErrNotFound", err)
	}
}
