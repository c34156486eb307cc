package supervisor

import (
	"context"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/types"
)

// parkingSupervisor is a supervisor over the in-memory driver with
// parking (runtimetest.Parking).
func parkingSupervisor(t *testing.T) (*Supervisor, Options, *runtimetest.Driver) {
	t.Helper()
	opts, drv := fakeOptions(t)
	opts.Driver = runtimetest.Parking{Driver: drv}
	s := New(opts)
	t.Cleanup(func() {
		s.Shutdown()
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	return s, opts, drv
}

// waitParked waits until machine id is parked (with spec env key=val, if
// key is set) or fails.
func waitParked(t *testing.T, drv *runtimetest.Driver, id, key, val string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if spec, ok := drv.Parked(id); ok && (key == "" || runtimetest.Env(spec, key) == val) {
			return
		}
		if time.Now().After(deadline) {
			spec, ok := drv.Parked(id)
			t.Fatalf("machine %s not parked (with %s=%q) after its stop: parked %v, env %v", id, key, val, ok, spec.Env)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A stop parks the machine's next start; the start uses it; a start
// after an update uses the new config (the update re-parks the new
// version); a new supervisor (a daemon restart) starts from what was
// parked; destroy drops it.
func TestStopParksNextStart(t *testing.T) {
	s, opts, drv := parkingSupervisor(t)
	ctx := context.Background()
	m, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1", Env: map[string]string{"V": "1"}}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(ctx, "a", m.ID, "", 0); err != nil {
		t.Fatal(err)
	}
	waitParked(t, drv, m.ID, "V", "1")
	if r, err := s.Start(ctx, "a", m.ID); err != nil || r.State != types.StateStarted {
		t.Fatalf("start: %v", err)
	}
	if n := drv.StartsFromPark(m.ID); n != 1 {
		t.Fatalf("%d starts from the parked task, want 1", n)
	}

	// Stop, then update without launch: the new version is parked.
	if _, err := s.Stop(ctx, "a", m.ID, "", 0); err != nil {
		t.Fatal(err)
	}
	waitParked(t, drv, m.ID, "V", "1")
	if _, err := s.Update(ctx, "a", m.ID, &types.MachineConfig{Image: "app:v1", Env: map[string]string{"V": "2"}}, true); err != nil {
		t.Fatal(err)
	}
	waitParked(t, drv, m.ID, "V", "2")
	if _, err := s.Start(ctx, "a", m.ID); err != nil {
		t.Fatal(err)
	}
	if spec, _ := drv.Spec(m.ID); runtimetest.Env(spec, "V") != "2" {
		t.Fatalf("started with V=%q, want the updated 2", runtimetest.Env(spec, "V"))
	}
	if n := drv.StartsFromPark(m.ID); n != 2 {
		t.Fatalf("%d starts from the parked task, want 2", n)
	}

	// A daemon restart: a new supervisor on the same state and driver.
	if _, err := s.Stop(ctx, "a", m.ID, "", 0); err != nil {
		t.Fatal(err)
	}
	waitParked(t, drv, m.ID, "", "")
	s.Shutdown()
	s2 := New(opts)
	defer s2.Shutdown()
	if err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Start(ctx, "a", m.ID); err != nil {
		t.Fatal(err)
	}
	if n := drv.StartsFromPark(m.ID); n != 3 {
		t.Fatalf("%d starts from the parked task after a restart, want 3", n)
	}

	// Destroy of a stopped, parked machine drops it.
	if _, err := s2.Stop(ctx, "a", m.ID, "", 0); err != nil {
		t.Fatal(err)
	}
	waitParked(t, drv, m.ID, "", "")
	if err := s2.Destroy(ctx, "a", m.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := drv.Parked(m.ID); ok {
		t.Fatal("destroyed machine still parked")
	}
}

// Not parked: a cordoned machine (a deploy's retired one, destroyed
// next), and machines with [[files]] or volumes; a restart (stop and
// start at once) starts afresh and leaves nothing parked.
func TestWhatIsNotParked(t *testing.T) {
	s, _, drv := parkingSupervisor(t)
	ctx := context.Background()
	raw := "eA=="
	cordoned, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1"}, CreateOptions{Cordoned: true})
	if err != nil {
		t.Fatal(err)
	}
	files, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1", Files: []types.File{{GuestPath: "/etc/x", RawValue: &raw}}}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1"}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Restart(ctx, "a", plain.ID, "", 0); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{cordoned.ID, files.ID, plain.ID} {
		if _, err := s.Stop(ctx, "a", id, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	// The plain machine is parked; the others, stopped at the same time
	// (and the fake parks at once), are not.
	waitParked(t, drv, plain.ID, "", "")
	if n := drv.StartsFromPark(plain.ID); n != 0 {
		t.Fatalf("the restart started from a parked task %d times, want 0", n)
	}
	time.Sleep(100 * time.Millisecond)
	for _, id := range []string{cordoned.ID, files.ID} {
		if _, ok := drv.Parked(id); ok {
			t.Errorf("machine %s was parked", id)
		}
	}
}
