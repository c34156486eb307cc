package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestGetOrDestroyed(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "live", types.StateStopped)
	gone := &Record{Machine: types.Machine{ID: "gone", State: types.StateStarted}, App: "a"}
	s.keepDestroyed(ctx, gone)
	if r, err := s.GetOrDestroyed(ctx, "a", "live"); err != nil || r.State != types.StateStopped {
		t.Fatalf("live machine: %+v, %v", r, err)
	}
	if r, err := s.GetOrDestroyed(ctx, "a", "gone"); err != nil || r.State != types.StateDestroyed {
		t.Fatalf("destroyed machine: %+v, %v", r, err)
	}
	if _, err := s.GetOrDestroyed(ctx, "a", "never"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown machine: %v, want ErrNotFound", err)
	}
}

// TestWaitState: a state already reached answers at once; an instance
// that has been replaced is "replaced" when asked for, a conflict when
// not; a missing machine is "destroyed" when asked for, not found when
// not; a state not reached times out.
func TestWaitState(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	r := &Record{Machine: types.Machine{ID: "m", State: types.StateStarted, InstanceID: "02BBB", Config: &types.MachineConfig{Image: "x"}}, App: "a",
		Versions: []Version{{InstanceID: "01AAA"}}}
	if _, err := store.PutJSON(ctx, st, machineKey("a", "m"), r, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		states   []string
		instance string
		reached  string
		err      error
	}{
		{[]string{types.StateStarted}, "", types.StateStarted, nil},
		{[]string{types.StateStopped, types.StateStarted}, "02BBB", types.StateStarted, nil},
		{[]string{types.StateReplaced}, "01AAA", types.StateReplaced, nil},
		{[]string{types.StateStarted}, "01AAA", "", ErrConflict},
		{[]string{types.StateStopped}, "", types.StateStarted, ErrTimeout},
	} {
		got, err := s.WaitState(ctx, "a", "m", c.states, c.instance, 50*time.Millisecond)
		if got != c.reached || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("wait %v at %q: %q, %v; want %q, %v", c.states, c.instance, got, err, c.reached, c.err)
		}
	}
	if got, err := s.WaitState(ctx, "a", "none", []string{types.StateDestroyed}, "", time.Second); err != nil || got != types.StateDestroyed {
		t.Errorf("wait destroyed for a missing machine: %q, %v", got, err)
	}
	if _, err := s.WaitState(ctx, "a", "none", []string{types.StateStarted}, "", time.Second); !errors.Is(err, ErrNotFound) {
		t.Errorf("wait started for a missing machine: %v, want ErrNotFound", err)
	}
}

// TestWaitSettled: settled (what flyctl's `machine wait` and `machine
// update` wait for) is reached by any state no operation is moving the
// machine out of, and the answer names that state; a transitional state
// is not settled.
func TestWaitSettled(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	for _, state := range []string{types.StateCreated, types.StateStarted, types.StateStopped, types.StateSuspended, types.StateFailed} {
		putMachine(t, st, "a", "m-"+state, state)
		if got, err := s.WaitState(ctx, "a", "m-"+state, []string{types.StateSettled}, "", time.Second); err != nil || got != state {
			t.Errorf("settled in %s: %q, %v", state, got, err)
		}
	}
	for _, state := range []string{types.StateStarting, types.StateStopping, types.StateSuspending, types.StateReplacing, types.StateDestroying} {
		putMachine(t, st, "a", "m-"+state, state)
		if got, err := s.WaitState(ctx, "a", "m-"+state, []string{types.StateSettled}, "", 30*time.Millisecond); !errors.Is(err, ErrTimeout) {
			t.Errorf("settled in %s: %q, %v; want a timeout", state, got, err)
		}
	}
	if got, err := s.WaitState(ctx, "a", "none", []string{types.StateSettled}, "", time.Second); err != nil || got != types.StateDestroyed {
		t.Errorf("settled for a missing machine: %q, %v", got, err)
	}
}

// TestFlyErrorTexts: the error texts Fly's clients match on (flyctl's
// `machine leases view|clear` look for " lease not found", its deploy for
// "lease currently held by", machine selection for "machine not found").
func TestFlyErrorTexts(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "m", types.StateStarted)
	if _, err := s.GetLease(ctx, "a", "m"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), " lease not found") {
		t.Errorf("no lease: %v", err)
	}
	if _, err := s.Get(ctx, "a", "ghost"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "machine not found") {
		t.Errorf("no machine: %v", err)
	}
	l, err := s.AcquireLease(ctx, "a", "m", "alice", "deploy", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AcquireLease(ctx, "a", "m", "bob", "", 0); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lease currently held by alice") {
		t.Errorf("second lease: %v", err)
	}
	if err := s.CheckLease(ctx, "a", "m", ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lease currently held by alice") {
		t.Errorf("change without the nonce: %v", err)
	}
	if err := s.ReleaseLease(ctx, "a", "m", "wrong"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "lease currently held by alice") {
		t.Errorf("release with a wrong nonce: %v", err)
	}
	if err := s.ReleaseLease(ctx, "a", "m", l.Nonce); err != nil {
		t.Fatal(err)
	}
}

// TestOldRecordsGetARegistry: a machine recorded before image_ref.registry
// was always set (a local image) reads with the local registry.
func TestOldRecordsGetARegistry(t *testing.T) {
	s, st := storeOnly(t)
	putMachine(t, st, "a", "old", types.StateStopped)
	r, err := s.Get(context.Background(), "a", "old")
	if err != nil || r.ImageRef.Registry != types.LocalRegistry {
		t.Fatalf("old record: %+v, %v", r, err)
	}
}
