package deploy

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func TestRegionParts(t *testing.T) {
	old := func(region, host string) *supervisor.Record {
		return &supervisor.Record{Machine: types.Machine{Region: region, HostID: host}}
	}
	cfg := &types.MachineConfig{Env: map[string]string{"PRIMARY_REGION": "fra"}}
	olds := []*supervisor.Record{old("iad", "c"), old("fra", "a"), old("ams", "d"), old("fra", "b")}
	type part struct {
		region string
		old    []string
		want   int
	}
	summary := func(ps []regionPart) []part {
		var out []part
		for _, p := range ps {
			out = append(out, part{p.region, hostsOf(p.old), p.want})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		want int
		out  []part
	}{
		{"same count: primary first, then by name", 4, []part{{"fra", []string{"a", "b"}, 2}, {"ams", []string{"d"}, 1}, {"iad", []string{"c"}, 1}}},
		{"more: to the primary", 6, []part{{"fra", []string{"a", "b"}, 4}, {"ams", []string{"d"}, 1}, {"iad", []string{"c"}, 1}}},
		{"fewer: off the last regions first", 2, []part{{"fra", []string{"a", "b"}, 2}, {"ams", []string{"d"}, 0}, {"iad", []string{"c"}, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(regionParts(&plan{cfg: cfg, old: olds, want: tc.want}))
			if !reflect.DeepEqual(got, tc.out) {
				t.Errorf("got %+v, want %+v", got, tc.out)
			}
		})
	}
	if got := regionParts(&plan{cfg: cfg, want: 2}); len(got) != 1 || got[0].region != "" || got[0].want != 2 {
		t.Errorf("a new group: %+v, want one part of 2 on the deploying host's region", got)
	}
}

// TestRollingRegionByRegion: machines in three regions are replaced
// region by region, the primary region (tst) first: a region's old
// machines are all retired before the next region's first new machine
// starts, and each new machine is made in its old one's region.
func TestRollingRegionByRegion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
	old := e.requireServing(3, 1, "v1")
	regionOf := map[string]string{old[0]: "iad", old[1]: "tst", old[2]: "ams"}
	ctx := context.Background()
	for id, region := range regionOf {
		if _, _, err := store.UpdateJSON(ctx, e.st, "machines/"+testApp+"/"+id, func(r *supervisor.Record) (*supervisor.Record, error) {
			r.Region = region
			return r, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	rel, msgs, err := e.deploy("v2", Request{Strategy: Rolling})
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("deploy v2: %v %+v\n%s", err, rel, strings.Join(msgs, "\n"))
	}
	e.requireServing(3, 2, "v2")
	var regions []string
	for _, m := range e.machines() {
		regions = append(regions, m.Region)
	}
	sort.Strings(regions)
	if !reflect.DeepEqual(regions, []string{"ams", "iad", "tst"}) {
		t.Errorf("new machines' regions %v, want one in each of ams, iad, tst", regions)
	}
	at := func(sub string) int {
		for i, m := range msgs {
			if strings.Contains(m, sub) {
				return i
			}
		}
		t.Fatalf("no %q in the deploy's events:\n%s", sub, strings.Join(msgs, "\n"))
		return -1
	}
	tst, ams, iad := at("region tst:"), at("region ams:"), at("region iad:")
	if !(tst < ams && ams < iad) {
		t.Errorf("regions in the order tst %d, ams %d, iad %d; want the primary (tst), then ams, then iad:\n%s", tst, ams, iad, strings.Join(msgs, "\n"))
	}
	for id, region := range regionOf {
		retired, next := at("old machine "+id), len(msgs)
		switch region {
		case "tst":
			next = ams
		case "ams":
			next = iad
		}
		if retired > next {
			t.Errorf("old machine %s of %s retired after the next region began:\n%s", id, region, strings.Join(msgs, "\n"))
		}
	}
}
