package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/runtime"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// fakeVolumes stands in for the volume manager, which needs root (loop
// devices, ext4): it keeps volume records in memory and attaches them by
// the real manager's rules (a machine's own volume, else a free one, else
// a new one when the app has none of that name; a volume whose machine is
// gone is free), so the deploy's side is what is tested.
type fakeVolumes struct {
	mu   sync.Mutex // guards the fields below
	sup  *supervisor.Supervisor
	vols []*fakeVolume
	next int
	// failAttach makes every attach fail (a machine that fails to start).
	failAttach bool
	// failCreateAfter, if > 0, makes Provision fail once it has created
	// that many volumes.
	failCreateAfter int
	created         int
}

type fakeVolume struct {
	id, name  string
	sizeMB    int
	retention int
	holder    string
}

func newFakeVolumes() *fakeVolumes { return &fakeVolumes{} }

// gone returns the holders of volumes whose machine no longer exists or
// is stopped (a stopped machine gives its volume up, as on the host). It
// asks the supervisor without holding f.mu: a killed daemon's store
// blocks for ever, and must not block the next daemon's attaches.
func (f *fakeVolumes) gone(ctx context.Context, app string) map[string]bool {
	f.mu.Lock()
	sup := f.sup
	var holders []string
	for _, v := range f.vols {
		if v.holder != "" {
			holders = append(holders, v.holder)
		}
	}
	f.mu.Unlock()
	out := map[string]bool{}
	for _, id := range holders {
		m, err := sup.Get(ctx, app, id)
		if errors.Is(err, supervisor.ErrNotFound) || (err == nil && (m.State == types.StateDestroyed || m.State == types.StateStopped)) {
			out[id] = true
		}
	}
	return out
}

// freeLocked reports whether no existing machine holds v.
func freeLocked(v *fakeVolume, gone map[string]bool) bool {
	return v.holder == "" || gone[v.holder]
}

func (f *fakeVolumes) newLocked(name string, sizeMB, retention int) *fakeVolume {
	f.next++
	v := &fakeVolume{id: fmt.Sprintf("vol_%d", f.next), name: name, sizeMB: sizeMB, retention: retention}
	f.vols = append(f.vols, v)
	return v
}

// attach is the supervisor spec hook.
func (f *fakeVolumes) attach(ctx context.Context, r *supervisor.Record, spec *runtime.Spec) error {
	if r.Config == nil || len(r.Config.Mounts) == 0 {
		return nil
	}
	gone := f.gone(ctx, r.App)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, mt := range r.Config.Mounts {
		if f.failAttach {
			return fmt.Errorf("attach %s: told to fail", mt.Name)
		}
		var pick *fakeVolume
		any := false
		for _, v := range f.vols {
			if v.name != mt.Name {
				continue
			}
			any = true
			if v.holder == r.ID {
				pick = v
				break
			}
		}
		if pick == nil {
			for _, v := range f.vols {
				if v.name == mt.Name && freeLocked(v, gone) {
					pick = v
					break
				}
			}
		}
		if pick == nil && !any {
			pick = f.newLocked(mt.Name, max(mt.SizeGB, 1)*1024, mt.SnapshotRetention)
		}
		if pick == nil {
			return fmt.Errorf("machine %s: no free volume for mount %s", r.ID, mt.Path)
		}
		pick.holder = r.ID
	}
	return nil
}

// Provision is Volumes.Provision.
func (f *fakeVolumes) Provision(ctx context.Context, app string, mt types.MachineMount, free int) ([]string, error) {
	gone := f.gone(ctx, app)
	f.mu.Lock()
	defer f.mu.Unlock()
	have, sizeMB := 0, 0
	for _, v := range f.vols {
		if v.name == mt.Name {
			sizeMB = max(sizeMB, v.sizeMB)
			if freeLocked(v, gone) {
				have++
			}
		}
	}
	if sizeMB == 0 {
		sizeMB = max(mt.SizeGB, 1) * 1024
	}
	var created []string
	for ; have < free; have++ {
		if f.failCreateAfter > 0 && f.created >= f.failCreateAfter {
			return created, fmt.Errorf("create volume %s: told to fail", mt.Name)
		}
		f.created++
		created = append(created, f.newLocked(mt.Name, sizeMB, mt.SnapshotRetention).id)
	}
	return created, nil
}

// Destroy is Volumes.Destroy.
func (f *fakeVolumes) Destroy(ctx context.Context, app, id string) (*types.Volume, error) {
	gone := f.gone(ctx, app)
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, v := range f.vols {
		if v.id == id {
			if !freeLocked(v, gone) {
				return nil, fmt.Errorf("volume %s is attached to machine %s", id, v.holder)
			}
			f.vols = append(f.vols[:i], f.vols[i+1:]...)
			return &types.Volume{ID: id, State: "destroyed"}, nil
		}
	}
	return nil, fmt.Errorf("volume %s: not found", id)
}

// state returns, sorted by id, "id size retention holder" of each volume,
// the holder "-" when free.
func (f *fakeVolumes) state(ctx context.Context) []string {
	gone := f.gone(ctx, testApp)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, v := range f.vols {
		h := v.holder
		if freeLocked(v, gone) {
			h = "-"
		}
		out = append(out, fmt.Sprintf("%s %d %d %s", v.id, v.sizeMB, v.retention, h))
	}
	sort.Strings(out)
	return out
}

// holders returns the machines holding a volume, and how many are free.
func (f *fakeVolumes) holders(ctx context.Context) (map[string]string, int) {
	gone := f.gone(ctx, testApp)
	f.mu.Lock()
	defer f.mu.Unlock()
	out, free := map[string]string{}, 0
	for _, v := range f.vols {
		if freeLocked(v, gone) {
			free++
			continue
		}
		out[v.holder] = v.id
	}
	return out, free
}

func (e *env) scaleCount(n int) (*Release, error) {
	e.t.Helper()
	return e.d.Scale(context.Background(), testApp, ScaleRequest{Count: &n, User: "ann"}, nil)
}

// requireVolumes checks that every machine holds its own volume of the
// given size and retention, and that free volumes are left.
func (e *env) requireVolumes(sizeMB, retention, free int) {
	e.t.Helper()
	ctx := context.Background()
	held, nfree := e.vols.holders(ctx)
	for _, m := range e.machines() {
		if _, ok := held[m.ID]; !ok {
			e.t.Fatalf("machine %s (%s) holds no volume; volumes: %v", m.ID, m.State, e.vols.state(ctx))
		}
	}
	if len(held) != len(e.machines()) || nfree != free {
		e.t.Fatalf("%d volumes held, %d free for %d machines; want %d free: %v", len(held), nfree, len(e.machines()), free, e.vols.state(ctx))
	}
	for _, s := range e.vols.state(ctx) {
		var id, holder string
		var size, ret int
		fmt.Sscanf(s, "%s %d %d %s", &id, &size, &ret, &holder)
		if size != sizeMB || ret != retention {
			e.t.Fatalf("volume %s: %d MB, retention %d; want %d MB, %d: %v", id, size, ret, sizeMB, retention, e.vols.state(ctx))
		}
	}
}

// TestScaleCountCreatesVolumes: scaling up a group with [[mounts]] gives
// each new machine a volume of its own, the size of the group's volumes
// with the mount's snapshot_retention; a scale to the count there is
// changes nothing; a scale down keeps the volumes, detached.
func TestScaleCountCreatesVolumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{})
	e.requireServing(1, 1, "v1")
	e.requireVolumes(2048, 14, 0)

	rel, err := e.scaleCount(3)
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("scale count 3: %v %+v; volumes %v, machines %v", err, rel, e.vols.state(context.Background()), e.machines())
	}
	ids := e.requireServing(3, 1, "v1")
	e.requireVolumes(2048, 14, 0)

	if rel, err := e.scaleCount(3); err != nil || rel.Description != "scale count (no change)" {
		t.Fatalf("a second scale count 3: %v %+v", err, rel)
	}
	if again := e.requireServing(3, 1, "v1"); !equalSets(again, ids) {
		t.Fatalf("a second scale count 3 changed the machines: %v, then %v", ids, again)
	}
	e.requireVolumes(2048, 14, 0)

	if _, err := e.scaleCount(1); err != nil {
		t.Fatalf("scale count 1: %v", err)
	}
	e.requireServing(1, 1, "v1")
	e.requireVolumes(2048, 14, 2) // kept, detached
	// Up again: the kept volumes (and their data) are used, none is made.
	if _, err := e.scaleCount(3); err != nil {
		t.Fatalf("scale count 3 again: %v", err)
	}
	e.requireServing(3, 1, "v1")
	e.requireVolumes(2048, 14, 0)
	if n := len(e.vols.state(context.Background())); n != 3 {
		t.Fatalf("%d volumes after scaling 3 → 1 → 3, want 3", n)
	}
}

// TestScaleCountIgnoresFailedMachines: a failed machine of the group does
// not count toward a scale's count, and the scale removes it.
func TestScaleCountIgnoresFailedMachines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{})
	cfg := e.machines()[0].Config
	e.vols.mu.Lock()
	e.vols.failAttach = true
	e.vols.mu.Unlock()
	if _, err := e.sup.Create(context.Background(), testApp, cloneConfig(cfg), supervisor.CreateOptions{}); err == nil {
		t.Fatal("a machine whose volume cannot attach started")
	}
	e.vols.mu.Lock()
	e.vols.failAttach = false
	e.vols.mu.Unlock()
	if n := len(e.machines()); n != 2 {
		t.Fatalf("%d machines, want the started one and the failed one", n)
	}

	rel, err := e.scaleCount(2)
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("scale count 2: %v %+v", err, rel)
	}
	e.requireServing(2, 1, "v1")
	e.requireVolumes(2048, 14, 0)
	if rel.Description != "scale count app 1→2 (1 failed machine removed)" {
		t.Errorf("recorded as %q", rel.Description)
	}
}

// TestFailedScaleCleansUp: a scale whose new machine fails its checks
// removes the machines and the volumes it created; the machine that
// served before still serves. A scale that cannot create a volume changes
// nothing either.
func TestFailedScaleCleansUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{})
	before := e.requireServing(1, 1, "v1")
	e.mu.Lock()
	e.failNth["v1"] = 3 // the second machine the scale adds answers 500
	e.mu.Unlock()

	rel, err := e.scaleCount(3)
	if err == nil || rel == nil || rel.Status != StatusFailed {
		t.Fatalf("scale count 3 with an unhealthy machine: %v %+v", err, rel)
	}
	if after := e.requireServing(1, 1, "v1"); !equalSets(after, before) {
		t.Fatalf("machines %v after the failed scale, want %v", after, before)
	}
	e.requireVolumes(2048, 14, 0)
	if n := len(e.vols.state(context.Background())); n != 1 {
		t.Fatalf("%d volumes after the failed scale, want the first machine's only: %v", n, e.vols.state(context.Background()))
	}

	e.vols.mu.Lock()
	e.vols.failCreateAfter = e.vols.created + 1
	e.vols.mu.Unlock()
	rel, err = e.scaleCount(3)
	if err == nil || rel == nil || rel.Status != StatusFailed {
		t.Fatalf("scale count 3 that cannot create its volumes: %v %+v", err, rel)
	}
	e.requireServing(1, 1, "v1")
	if n := len(e.vols.state(context.Background())); n != 1 {
		t.Fatalf("%d volumes after a scale that could not create them all, want 1: %v", n, e.vols.state(context.Background()))
	}
}

// TestResumeInterruptedScaleWithVolumes: a daemon killed while a scale
// starts its new machines rolls the scale back when it starts again: the
// new machines and the volumes made for them go, the first one serves.
func TestResumeInterruptedScaleWithVolumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{})
	before := e.requireServing(1, 1, "v1")
	old := map[string]bool{before[0]: true}
	started := 0
	e.ks.killAfter = func(key string, value []byte) bool {
		id, st, _ := machineWrite(key, value)
		if id != "" && !old[id] && st == types.StateStarted {
			started++
		}
		return started == 2
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		three := 3
		_, _ = e.d.Scale(context.Background(), testApp, ScaleRequest{Count: &three}, nil)
	}()
	select {
	case <-e.ks.dead:
	case <-finished:
		t.Fatal("the scale ended without reaching the kill point")
	case <-time.After(20 * time.Second):
		t.Fatal("the kill point was not reached within 20s")
	}
	e.restart()
	if rel := e.release(2); rel.Status != StatusFailed || !strings.HasPrefix(rel.Reason, ReasonInterrupted) {
		t.Fatalf("the scale's release after the restart: %s %q, want failed (interrupted)", rel.Status, rel.Reason)
	}
	if after := e.requireServing(1, 1, "v1"); !equalSets(after, before) {
		t.Fatalf("machines %v after the restart, want %v", after, before)
	}
	if st := e.vols.state(context.Background()); len(st) != 1 {
		t.Fatalf("volumes after the interrupted scale was rolled back: %v, want the first machine's only", st)
	}
	if _, err := e.scaleCount(3); err != nil {
		t.Fatalf("scale count 3 after the restart: %v", err)
	}
	e.requireServing(3, 1, "v1")
	e.requireVolumes(2048, 14, 0)
}

// TestRetiredMachineIsNotWoken: while a rolling deploy replaces a machine
// that holds a volume, requests keep asking the proxy to wake a stopped
// machine of the app. The retired one must not start again: it would take
// its volume back and its replacement could not attach it (the deploy
// failed this way under traffic before retired machines were cordoned).
func TestRetiredMachineIsNotWoken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{})
	old := e.requireServing(1, 1, "v1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan string, 100)
	go func() { // the proxy, asked for the app again and again
		for ctx.Err() == nil {
			if id, err := e.sup.Wake(ctx, testApp, "tst"); err == nil {
				woke <- id
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	rel, msgs, err := e.deploy("v2", Request{})
	cancel()
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("deploy v2 under wake requests: %v %+v\n%s", err, rel, strings.Join(msgs, "\n"))
	}
	close(woke)
	for id := range woke {
		if id == old[0] {
			t.Fatalf("the retired machine %s was woken during the deploy", id)
		}
	}
	e.requireServing(1, 2, "v2")
}
