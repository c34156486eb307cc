package supervisor

import (
	"reflect"
	"testing"

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
	}
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
