package deploy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// supMachines is ClusterMachines on one supervisor: every region's
// machines on the env's one host, which is enough for the regional
// counting (the placement and forwarding are the API's, tested there and
// end to end).
type supMachines struct{ sup *supervisor.Supervisor }

func (m supMachines) Create(ctx context.Context, app string, req types.CreateMachineRequest) (types.Machine, error) {
	r, err := m.sup.Create(ctx, app, req.Config, supervisor.CreateOptions{Region: req.Region})
	if err != nil {
		return types.Machine{}, err
	}
	return r.Machine, nil
}

func (m supMachines) WaitStarted(ctx context.Context, app, id string) error {
	_, err := m.sup.WaitState(ctx, app, id, []string{types.StateStarted}, "", 30*time.Second)
	return err
}

func (m supMachines) Destroy(ctx context.Context, app, id string) error {
	return m.sup.Destroy(ctx, app, id, true)
}

// TestScaleRegions: count per region, each region on its own: one short
// gets copies of the group's machines, one over loses its newest, a
// region not named keeps its machines.
func TestScaleRegions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
	ctx := context.Background()
	before := e.machines()
	if len(before) != 2 {
		t.Fatalf("after the deploy: %d machines", len(before))
	}
	ms := supMachines{e.sup}
	if _, err := e.d.ScaleRegions(ctx, testApp, "", 1, []string{"tst", "iad"}, ms, nil); err != nil {
		t.Fatal(err)
	}
	byRegion := map[string][]*supervisor.Record{}
	for _, m := range e.machines() {
		byRegion[m.Region] = append(byRegion[m.Region], m)
	}
	// (Both were created in the same second: which one is the newest is
	// not told apart.)
	if len(byRegion["tst"]) != 1 || (byRegion["tst"][0].ID != before[0].ID && byRegion["tst"][0].ID != before[1].ID) {
		t.Fatalf("tst after scale to 1: %v; want one of %s, %s kept", byRegion["tst"], before[0].ID, before[1].ID)
	}
	kept := byRegion["tst"][0].ID
	iad := byRegion["iad"]
	if len(iad) != 1 || iad[0].State != types.StateStarted || groupOf(iad[0]) != "app" ||
		iad[0].Config.Metadata[types.MetaRelease] != before[1].Config.Metadata[types.MetaRelease] || iad[0].Config.Image != before[1].Config.Image {
		t.Fatalf("iad after scale to 1: %+v; want a started copy of the group's machine", iad)
	}
	// Another scale of iad leaves tst alone.
	if _, err := e.d.ScaleRegions(ctx, testApp, "", 0, []string{"iad"}, ms, nil); err != nil {
		t.Fatal(err)
	}
	if after := e.machines(); len(after) != 1 || after[0].ID != kept {
		t.Fatalf("after scale to 0 in iad: %v", after)
	}
	if _, err := e.d.ScaleRegions(ctx, testApp, "nope", 1, []string{"iad"}, ms, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown group: %v", err)
	}
}

// A group with volumes is refused: its volumes would have to be on the
// new machines' hosts.
func TestScaleRegionsRefusesMounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mounts = true
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 1}})
	_, err := e.d.ScaleRegions(context.Background(), testApp, "", 1, []string{"iad"}, supMachines{e.sup}, nil)
	if !errors.Is(err, ErrInvalid) || len(e.machines()) != 1 {
		t.Fatalf("scale of a group with volumes: %v, %d machines", err, len(e.machines()))
	}
}
