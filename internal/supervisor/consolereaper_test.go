package supervisor

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// TestConsoleReaper: a console machine stays while its lease is
// refreshed and is destroyed at the first tick after it lapses; one that
// never got a lease goes after the grace period; other machines, leased or
// not, are never touched.
func TestConsoleReaper(t *testing.T) {
	opts, _ := fakeOptions(t)
	s := New(opts)
	ctx := context.Background()
	console := func() *types.MachineConfig {
		return &types.MachineConfig{Image: "app:v1", Metadata: map[string]string{types.MetaProcessGroup: types.ConsoleGroup}}
	}
	leased, err := s.Create(ctx, "a", console(), CreateOptions{LeaseTTL: 20 * time.Second, LeaseOwner: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := s.Create(ctx, "a", console(), CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1", Metadata: map[string]string{types.MetaProcessGroup: "app"}}, CreateOptions{LeaseTTL: time.Second, LeaseOwner: "x"})
	if err != nil {
		t.Fatal(err)
	}
	cr := &ConsoleReaper{Sup: s, Grace: 30 * time.Second, Log: opts.Log}
	now := time.Now()
	if gone, err := cr.Tick(ctx, now); err != nil || len(gone) != 0 {
		t.Fatalf("tick at once: %v %v, want nothing destroyed", gone, err)
	}
	// The CLI refreshes: still kept past the first expiry.
	if _, err := s.RefreshLease(ctx, "a", leased.ID, leased.LeaseNonce, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if gone, err := cr.Tick(ctx, now.Add(10*time.Second)); err != nil || len(gone) != 0 {
		t.Fatalf("tick within the lease: %v %v", gone, err)
	}
	gone, err := cr.Tick(ctx, now.Add(40*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(gone)
	want := []string{leased.ID, bare.ID}
	slices.Sort(want)
	if !slices.Equal(gone, want) {
		t.Fatalf("tick after the lease lapsed: destroyed %v, want %v", gone, want)
	}
	if r, err := s.Get(ctx, "a", app.ID); err != nil || r.State == types.StateDestroyed {
		t.Fatalf("an app machine with a lapsed lease: %v %+v, want it left alone", err, r)
	}
	for _, id := range want {
		if r, err := s.Get(ctx, "a", id); err == nil && r.State != types.StateDestroyed {
			t.Errorf("console machine %s is %s after the reaper", id, r.State)
		}
	}
}
