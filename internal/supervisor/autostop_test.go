package supervisor

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestExcessCapacityRule(t *testing.T) {
	stop, susp, off := types.AutostopStop, types.AutostopSuspend, types.AutostopOff
	c := func(id, region string, load int, mode types.Autostop) candidate {
		return candidate{app: "a", id: id, region: region, load: load, soft: 2, mode: mode}
	}
	ids := func(cs []candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.id)
		}
		return out
	}
	cases := []struct {
		name    string
		running []candidate
		min     int
		want    []string
	}{
		{"lone idle machine stops", []candidate{c("m1", "ord", 0, stop)}, 0, []string{"m1"}},
		{"lone busy machine stays", []candidate{c("m1", "ord", 1, stop)}, 0, nil},
		{"min_machines_running keeps it", []candidate{c("m1", "ord", 0, stop)}, 1, nil},
		{"autostop off", []candidate{c("m1", "ord", 0, off)}, 0, nil},
		{"unset autostop", []candidate{c("m1", "ord", 0, "")}, 0, nil},
		// 3 running, none over soft: excess = 3 - 1 = 2 ≥ 1: stop exactly one, the least loaded.
		{"one of three, least loaded", []candidate{c("m1", "ord", 1, stop), c("m2", "ord", 0, susp), c("m3", "ord", 1, stop)}, 0, []string{"m2"}},
		// 2 running, one over soft: excess = 2 - 2 = 0.
		{"no excess", []candidate{c("m1", "ord", 5, stop), c("m2", "ord", 0, stop)}, 0, nil},
		// 3 running, one over soft: excess = 3 - 2 = 1.
		{"excess with load", []candidate{c("m1", "ord", 5, stop), c("m2", "ord", 1, stop), c("m3", "ord", 0, stop)}, 0, []string{"m3"}},
		// One per region per tick; the minimum counts across the app.
		{"one per region", []candidate{c("a1", "ams", 0, stop), c("a2", "ams", 0, stop), c("o1", "ord", 0, stop)}, 0, []string{"a2", "o1"}},
		{"min across regions", []candidate{c("a1", "ams", 0, stop), c("a2", "ams", 0, stop), c("o1", "ord", 0, stop)}, 2, []string{"a2"}},
		{"only eligible machines go", []candidate{c("m1", "ord", 0, off), c("m2", "ord", 1, stop)}, 0, []string{"m2"}},
	}
	for _, tc := range cases {
		got := ids(excess(tc.running, tc.min))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: stopped %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWakeOrder(t *testing.T) {
	no := false
	svc := []types.MachineService{{InternalPort: 8080}}
	rec := func(id, state, region string, cfg *types.MachineConfig) *Record {
		if cfg == nil {
			cfg = &types.MachineConfig{Services: svc}
		}
		return &Record{Machine: types.Machine{ID: id, State: state, Region: region, Config: cfg}}
	}
	recs := []*Record{
		rec("far-stopped", types.StateStopped, "far", nil),
		rec("near-stopped", types.StateStopped, "ord", nil),
		rec("started", types.StateStarted, "ord", nil),
		rec("far-suspended", types.StateSuspended, "far", nil),
		rec("near-suspended", types.StateSuspended, "ord", nil),
		rec("no-autostart", types.StateStopped, "ord", &types.MachineConfig{Services: []types.MachineService{{InternalPort: 8080, Autostart: &no}}}),
		rec("disabled", types.StateStopped, "ord", &types.MachineConfig{Services: svc, DisableMachineAutostart: new(bool)}),
		rec("no-service", types.StateStopped, "ord", &types.MachineConfig{}),
		rec("cordoned", types.StateStopped, "ord", nil),
	}
	recs[8].Cordoned = true
	*recs[6].Config.DisableMachineAutostart = true
	var got []string
	for _, r := range wakeOrder(recs, "ord") {
		got = append(got, r.ID)
	}
	want := []string{"near-suspended", "near-stopped", "far-suspended", "far-stopped"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("wake order %v, want %v", got, want)
	}
}

// fakeTraffic is the proxy's view of machines' traffic, set by the test.
type fakeTraffic map[string]types.MachineLoad

func (f fakeTraffic) Traffic(app, id string) types.MachineLoad { return f[id] }

// A machine that has just become routable, or was used within MinIdle, or
// is leased by a deploy, is never stopped by autostop, whatever the
// interval; once it has been idle for MinIdle it is, and the stop is
// recorded as autostop's, never as a crash.
func TestAutostopSparesNewAndDeployedMachines(t *testing.T) {
	s, st, d, _ := withTask(t)
	ctx := context.Background()
	// One machine per app: "fresh" of app a, "leased" of app b.
	for app, id := range map[string]string{"a": "fresh", "b": "leased"} {
		stop := types.AutostopStop
		r := &Record{Machine: types.Machine{ID: id, State: types.StateStarted, InstanceID: "01AAA", UpdatedAt: now(),
			Config: &types.MachineConfig{Image: "img:1", Services: []types.MachineService{{InternalPort: 8080, Autostop: &stop, MinMachinesRunning: types.Ptr(0)}}}}, App: app}
		if _, err := store.PutJSON(ctx, st, machineKey(app, id), r, 0); err != nil {
			t.Fatal(err)
		}
		d.running[id] = true
	}
	clock := time.Unix(1_000_000, 0)
	traffic := fakeTraffic{
		// Became routable 300ms ago: a deploy's smoke window.
		"fresh":  {Routable: true, RoutableSince: clock.Add(-300 * time.Millisecond)},
		"leased": {Routable: true, RoutableSince: clock.Add(-time.Hour)},
	}
	a := &Autostopper{Sup: s, Loads: traffic, Interval: time.Second, MinIdle: 5 * time.Second, Now: func() time.Time { return clock }}
	l, err := s.AcquireLease(ctx, "b", "leased", "hangar-deploy", "deploy of release v2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	plan := func() []string {
		t.Helper()
		cs, err := a.plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.id)
		}
		return ids
	}
	if got := plan(); len(got) != 0 {
		t.Fatalf("autostop would stop %v: a machine routable for 300ms, and a leased one", got)
	}
	// 2s later it served a request: still not idle for MinIdle.
	clock = clock.Add(2 * time.Second)
	traffic["fresh"] = types.MachineLoad{Routable: true, RoutableSince: clock.Add(-2300 * time.Millisecond), LastRequest: clock}
	if got := plan(); len(got) != 0 {
		t.Fatalf("autostop would stop %v: a machine used just now", got)
	}
	// Idle for MinIdle: it goes; the leased one still stays.
	clock = clock.Add(5 * time.Second)
	stopped, err := a.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 1 || stopped[0] != "fresh" {
		t.Fatalf("autostop stopped %v, want [fresh]", stopped)
	}
	r, err := s.Get(ctx, "a", "fresh")
	if err != nil {
		t.Fatal(err)
	}
	if !r.StoppedByAutostop() || r.RestartCount != 0 || r.Events[0].Type != "stop" || r.Events[0].Request["reason"] != StopReasonAutostop {
		t.Fatalf("stopped machine: state %s, stop reason %q, restarts %d, last event %+v", r.State, r.StopReason, r.RestartCount, r.Events[0])
	}
	if err := s.ReleaseLease(ctx, "b", "leased", l.Nonce); err != nil {
		t.Fatal(err)
	}
	if got := plan(); len(got) != 1 || got[0] != "leased" {
		t.Fatalf("after the deploy's lease: plan %v, want [leased]", got)
	}
}

// A user's stop is not autostop's.
func TestUserStopIsNotAutostop(t *testing.T) {
	s, st, d, _ := withTask(t)
	putRunning(t, s, st, d, "m1", types.StateStarted)
	r, err := s.Stop(context.Background(), "a", "m1", "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.StoppedByAutostop() || r.StopReason != "" {
		t.Fatalf("user stop recorded as autostop: %+v", r.StopReason)
	}
}

// Every service of a machine counts, whatever order fly.toml lists them
// in: the HTTP service is found by its handler, not by being first.
func TestEveryServiceCounts(t *testing.T) {
	stop, off := types.AutostopStop, types.AutostopOff
	no := false
	tcp := types.MachineService{InternalPort: 5432, Autostart: &no, Autostop: &stop, MinMachinesRunning: types.Ptr(2),
		Ports: []types.MachinePort{{Port: types.Ptr(5432)}}}
	web := types.MachineService{InternalPort: 8080, Ports: []types.MachinePort{{Port: types.Ptr(80), Handlers: []string{"http"}}}}
	cfg := &types.MachineConfig{Services: []types.MachineService{tcp, web}, Checks: map[string]types.MachineCheck{"alive": {Type: "tcp"}}}
	if m := autostopMode(cfg); m != stop {
		t.Errorf("autostop mode %q: the raw TCP service asks to stop and the HTTP one says nothing", m)
	}
	if !autostartable(cfg) {
		t.Error("not autostartable, though the HTTP service leaves autostart on")
	}
	web.Autostop = &off
	cfg.Services[1] = web
	if m := autostopMode(cfg); m != off {
		t.Errorf("autostop mode %q, want the HTTP service's %q", m, off)
	}
	checks := machineChecks(cfg)
	if len(checks) != 1 || checks[0].port != 8080 {
		t.Errorf("top-level check %+v, want the HTTP service's port 8080", checks)
	}
	// min_machines_running: the largest any service sets.
	s, st, d, _ := withTask(t)
	ctx := context.Background()
	for _, id := range []string{"m1", "m2"} {
		r := &Record{Machine: types.Machine{ID: id, State: types.StateStarted, InstanceID: "01AAA", UpdatedAt: now(),
			Config: &types.MachineConfig{Image: "img:1", Services: []types.MachineService{tcp, {InternalPort: 8080, Autostop: &stop,
				Ports: []types.MachinePort{{Port: types.Ptr(80), Handlers: []string{"http"}}}}}}}, App: "a"}
		if _, err := store.PutJSON(ctx, st, machineKey("a", id), r, 0); err != nil {
			t.Fatal(err)
		}
		d.running[id] = true
	}
	long := time.Unix(1_000_000, 0)
	idle := types.MachineLoad{Routable: true, RoutableSince: long.Add(-time.Hour)}
	a := &Autostopper{Sup: s, Loads: fakeTraffic{"m1": idle, "m2": idle}, Interval: time.Second, Now: func() time.Time { return long }}
	if cs, err := a.plan(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("plan %v, %v: the raw TCP service's min_machines_running = 2 keeps both", cs, err)
	}
}
