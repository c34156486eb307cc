package supervisor

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/types"
)

// TestOneHostPerMachine: two supervisors (two hosts) on one store. Each
// machine records the host that created it; only that host runs,
// recovers, stops or destroys it; the other refuses and never starts a
// task for it. Machines written before host ids go to exactly one host.
func TestOneHostPerMachine(t *testing.T) {
	optsA, drvA := fakeOptions(t)
	optsA.HostID = "a"
	optsB := optsA
	netB := runtimetest.NewNetwork()
	drvB := runtimetest.New(netB)
	optsB.Driver, optsB.Network, optsB.HostID, optsB.Router = drvB, netB, "b", &fakeRouter{}
	a, b := New(optsA), New(optsB)
	defer a.Shutdown()
	defer b.Shutdown()
	t.Cleanup(func() {
		for _, d := range []*runtimetest.Driver{drvA, drvB} {
			for _, id := range d.Running() {
				_ = d.Destroy(context.Background(), id)
			}
		}
	})
	ctx := context.Background()
	cfg := &types.MachineConfig{Image: "app:v1"}
	m, err := a.Create(ctx, "web", cfg, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.HostID != "a" || m.State != types.StateStarted {
		t.Fatalf("created %+v; want host a, started", m.Machine)
	}
	if err := b.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if drvB.Starts(m.ID) != 0 || len(drvB.Running()) != 0 {
		t.Fatalf("host b started a's machine: %v", drvB.Running())
	}
	if _, err := b.Start(ctx, "web", m.ID); !errors.Is(err, ErrOtherHost) || !errors.Is(err, types.ErrConflict) {
		t.Errorf("b starts a's machine: %v, want ErrOtherHost", err)
	}
	if _, err := b.Stop(ctx, "web", m.ID, "", 0); !errors.Is(err, ErrOtherHost) {
		t.Errorf("b stops a's machine: %v, want ErrOtherHost", err)
	}
	if err := b.Destroy(ctx, "web", m.ID, true); !errors.Is(err, ErrOtherHost) {
		t.Errorf("b destroys a's machine: %v, want ErrOtherHost", err)
	}
	if err := b.Signal(ctx, "web", m.ID, syscall.SIGTERM); !errors.Is(err, ErrOtherHost) {
		t.Errorf("b signals a's machine: %v, want ErrOtherHost", err)
	}
	if _, err := b.Restart(ctx, "web", m.ID, "", 0); !errors.Is(err, ErrOtherHost) {
		t.Errorf("b restarts a's machine: %v, want ErrOtherHost", err)
	}
	if got, _ := a.Get(ctx, "web", m.ID); got.State != types.StateStarted {
		t.Errorf("a's machine after b's refusals: %s", got.State)
	}
	if ms, _ := b.ListLocal(ctx, ""); len(ms) != 0 {
		t.Errorf("b's local machines: %d, want 0", len(ms))
	}
	if ms, _ := b.List(ctx, ""); len(ms) != 1 {
		t.Errorf("b sees %d machines in the shared state, want 1", len(ms))
	}
	if ms, _ := a.ListLocal(ctx, ""); len(ms) != 1 {
		t.Errorf("a's local machines: %d, want 1", len(ms))
	}

	// A machine of before host ids (a single host's state).
	optsOld := optsA
	optsOld.HostID = ""
	old, err := New(optsOld).Create(ctx, "web", cfg, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	if old.HostID != "" {
		t.Fatalf("a host without an id recorded %q", old.HostID)
	}
	var wg sync.WaitGroup
	for _, s := range []*Supervisor{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Recover(ctx) }()
	}
	wg.Wait()
	got, err := a.Get(ctx, "web", old.ID)
	if err != nil || (got.HostID != "a" && got.HostID != "b") {
		t.Fatalf("the old machine after both recovered: %+v, %v; want claimed by a or b", got, err)
	}
	la, _ := a.ListLocal(ctx, "web")
	lb, _ := b.ListLocal(ctx, "web")
	if len(la)+len(lb) != 2 {
		t.Errorf("a runs %d, b runs %d machines; want 2 in all, each machine on one host", len(la), len(lb))
	}
	if drvA.Starts(m.ID) != 1 {
		t.Errorf("a's machine started %d times, want once (a second Recover re-adopts)", drvA.Starts(m.ID))
	}
}
