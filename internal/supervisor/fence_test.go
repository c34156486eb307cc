package supervisor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/types"
)

// hostsOnOneStore returns supervisors for hosts ids on one store, each
// with its own driver, network and router.
func hostsOnOneStore(t *testing.T, ids ...string) ([]*Supervisor, []*runtimetest.Driver, []*fakeRouter) {
	t.Helper()
	base, _ := fakeOptions(t)
	var sups []*Supervisor
	var drvs []*runtimetest.Driver
	var routers []*fakeRouter
	for _, id := range ids {
		o := base
		net := runtimetest.NewNetwork()
		drv := runtimetest.New(net)
		rt := &fakeRouter{}
		o.Driver, o.Network, o.Router, o.HostID = drv, net, rt, id
		s := New(o)
		t.Cleanup(s.Shutdown)
		t.Cleanup(func() {
			for _, m := range drv.Running() {
				_ = drv.Destroy(context.Background(), m)
			}
		})
		sups, drvs, routers = append(sups, s), append(drvs, drv), append(routers, rt)
	}
	return sups, drvs, routers
}

// TestClaimLostOneWinner: three survivors claim the machine of a lost
// host at once; exactly one wins, the others are told it is not theirs.
// The winner's replacement carries the reason; the lost record names it.
// A claim held by a host that is lost since can be taken over.
func TestClaimLostOneWinner(t *testing.T) {
	s, _, _ := hostsOnOneStore(t, "c", "a", "b", "d")
	ctx := context.Background()
	m, err := s[0].Create(ctx, "web", &types.MachineConfig{Image: "app:v1", Metadata: map[string]string{types.MetaProcessGroup: "app"}}, CreateOptions{Region: "iad"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	claims := make([]*Record, 3)
	errs := make([]error, 3)
	for i, sv := range s[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claims[i], errs[i] = sv.ClaimLost(ctx, "web", m.ID, "c", nil)
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("hosts %d and %d both claimed the lost machine", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, ErrNotLost):
			t.Fatalf("claim %d: %v, want ErrNotLost", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no survivor claimed the lost machine")
	}
	winner := s[1+won]
	rec := claims[won]
	if rec.State != types.StateDestroying || rec.FailoverFrom != types.StateStarted {
		t.Fatalf("claimed record: state %s from %s, want destroying from started", rec.State, rec.FailoverFrom)
	}
	nm, err := winner.ReplaceLost(ctx, rec, "fra", "")
	if err != nil {
		t.Fatal(err)
	}
	want := "replaced machine " + m.ID + " lost with host c"
	if nm.HostID != winner.HostID() || nm.State != types.StateStarted || nm.Region != "fra" || nm.HostNote != want {
		t.Fatalf("replacement: host %s state %s region %s note %q; want host %s, started, fra, %q", nm.HostID, nm.State, nm.Region, nm.HostNote, winner.HostID(), want)
	}
	if nm.Config.Metadata[types.MetaProcessGroup] != "app" {
		t.Errorf("replacement's group %q, want app", nm.Config.Metadata[types.MetaProcessGroup])
	}
	if ev := findEvent(nm.Events, "replace"); ev == nil || ev.Request["reason"] != want {
		t.Errorf("replacement's events %+v: want a replace event with the reason", nm.Events)
	}
	old, _ := winner.Get(ctx, "web", m.ID)
	if old.ReplacedBy != nm.ID || old.State != types.StateDestroying || !strings.Contains(old.HostNote, nm.ID) {
		t.Errorf("lost record: replaced_by %q state %s note %q", old.ReplacedBy, old.State, old.HostNote)
	}
	// Replaced: nobody claims it again.
	for _, sv := range s[1:] {
		if _, err := sv.ClaimLost(ctx, "web", m.ID, "c", func(string) bool { return true }); !errors.Is(err, ErrNotLost) {
			t.Errorf("claim of a replaced machine: %v, want ErrNotLost", err)
		}
	}

	// A claim whose holder is lost too passes to another survivor.
	m2, err := s[0].Create(ctx, "web", &types.MachineConfig{Image: "app:v1"}, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s[1].ClaimLost(ctx, "web", m2.ID, "c", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s[2].ClaimLost(ctx, "web", m2.ID, "c", func(h string) bool { return false }); !errors.Is(err, ErrNotLost) {
		t.Errorf("claim held by a live host: %v, want ErrNotLost", err)
	}
	r2, err := s[2].ClaimLost(ctx, "web", m2.ID, "c", func(h string) bool { return h == s[1].HostID() })
	if err != nil || r2.FailoverClaim != s[2].HostID() || r2.FailoverFrom != types.StateCreated {
		t.Fatalf("take over a lost host's claim: %+v, %v", r2, err)
	}
	// A claim given back restores the state.
	if err := s[2].ReleaseClaim(ctx, "web", m2.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s[2].Get(ctx, "web", m2.ID); got.State != types.StateCreated || got.FailoverClaim != "" {
		t.Errorf("after release: state %s claim %q, want created and none", got.State, got.FailoverClaim)
	}
}

func findEvent(evs []types.MachineEvent, typ string) *types.MachineEvent {
	for i := range evs {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}

// TestFenceOnReturn: host c's machine keeps running while c is cut off;
// a survivor claims it (c's sweep takes it out of the proxy and stops its
// task at once, before the replacement exists), then replaces it (c's
// sweep destroys it: task, record, address). A restarted daemon of c
// (Recover) never starts a claimed machine again.
func TestFenceOnReturn(t *testing.T) {
	s, drv, routers := hostsOnOneStore(t, "c", "a")
	c, a := s[0], s[1]
	ctx := context.Background()
	cfg := &types.MachineConfig{Image: "app:v1", Services: []types.MachineService{{Protocol: "tcp", InternalPort: 8080}}}
	m, err := c.Create(ctx, "web", cfg, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := c.Create(ctx, "web", cfg, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Fence(ctx); err != nil || n != 0 {
		t.Fatalf("sweep with nothing replaced: %d, %v", n, err)
	}
	rec, err := a.ClaimLost(ctx, "web", m.ID, "c", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Fence(ctx); err != nil || n != 1 {
		t.Fatalf("sweep with one claimed: %d, %v; want 1", n, err)
	}
	if running(drv[0], m.ID) {
		t.Error("c still runs its claimed machine after the sweep")
	}
	if !strings.Contains(routers[0].String(), "remove "+m.ID) {
		t.Errorf("c's router was not told to drop %s: %s", m.ID, routers[0])
	}
	nm, err := a.ReplaceLost(ctx, rec, "iad", "")
	if err != nil {
		t.Fatal(err)
	}
	// A restarted daemon of c: the replaced machine is destroyed before it
	// could serve, the other re-adopted.
	if err := c.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "web", m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the replaced machine's record after c's return: %v, want not found", err)
	}
	if drv[0].Starts(m.ID) != 1 {
		t.Errorf("c started its replaced machine %d times, want once (never again)", drv[0].Starts(m.ID))
	}
	if got, _ := c.Get(ctx, "web", kept.ID); got.State != types.StateStarted || !running(drv[0], kept.ID) {
		t.Errorf("c's other machine: %s, running %v; want started", got.State, running(drv[0], kept.ID))
	}
	if ds, _ := c.ListDestroyed(ctx, "web"); len(ds) != 1 || ds[0].ID != m.ID {
		t.Errorf("destroyed machines remembered: %d, want the replaced one", len(ds))
	}
	all, _ := a.List(ctx, "web")
	if len(all) != 2 {
		t.Errorf("the app has %d machines, want 2 (the count asked)", len(all))
	}
	if got, _ := a.Get(ctx, "web", nm.ID); got.State != types.StateStarted || !running(drv[1], nm.ID) {
		t.Errorf("the replacement on a: %s", got.State)
	}
}

func running(d *runtimetest.Driver, id string) bool {
	for _, r := range d.Running() {
		if r == id {
			return true
		}
	}
	return false
}
