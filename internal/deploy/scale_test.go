package deploy

import (
	"context"
	"testing"

	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

func byGroup(ms []*supervisor.Record) map[string][]*supervisor.Record {
	out := map[string][]*supervisor.Record{}
	for _, m := range ms {
		out[groupOf(m)] = append(out[groupOf(m)], m)
	}
	return out
}

// TestScaleSizeOfOneGroup: scale memory --process-group web replaces the
// web machines only, with the new size, and runs no release_command.
func TestScaleSizeOfOneGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.groups = true
	rc := `  release_command = "migrate exit 0"`
	e.mustDeploy("v1", Request{Counts: map[string]int{"web": 2, "worker": 1}}, rc)
	before := byGroup(e.machines())
	if len(before["web"]) != 2 || len(before["worker"]) != 1 || e.releaseCommands != 1 {
		t.Fatalf("after the deploy: %d web, %d worker machines, %d release commands", len(before["web"]), len(before["worker"]), e.releaseCommands)
	}

	rel, err := e.d.Scale(context.Background(), testApp, ScaleRequest{Group: "web", MemoryMB: 512, User: "ann"}, nil)
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("scale memory: %v %+v", err, rel)
	}
	after := byGroup(e.machines())
	if len(after["worker"]) != 1 || after["worker"][0].ID != before["worker"][0].ID || e.drv.Starts(before["worker"][0].ID) != 1 {
		t.Errorf("the worker group was redeployed: before %s, after %v", before["worker"][0].ID, after["worker"])
	}
	if g := after["worker"][0].Config.Guest; g != nil && g.MemoryMB == 512 {
		t.Errorf("the worker's memory changed: %+v", g)
	}
	if len(after["web"]) != 2 {
		t.Fatalf("%d web machines, want 2", len(after["web"]))
	}
	for _, m := range after["web"] {
		if m.ID == before["web"][0].ID || m.ID == before["web"][1].ID || m.Config.Guest == nil || m.Config.Guest.MemoryMB != 512 || m.State != types.StateStarted {
			t.Errorf("web machine %s (%s) after the scale: guest %+v", m.ID, m.State, m.Config.Guest)
		}
	}
	if e.releaseCommands != 1 {
		t.Errorf("release_command ran %d times, want once (for the deploy only)", e.releaseCommands)
	}
	if rel.Counts["web"] != 2 || rel.Counts["worker"] != 1 || rel.Machines["web"].Guest.MemoryMB != 512 {
		t.Errorf("release: counts %v, web guest %+v", rel.Counts, rel.Machines["web"].Guest)
	}
	// A later deploy keeps the counts.
	rel = e.mustDeploy("v2", Request{}, rc)
	if rel.Counts["web"] != 2 || rel.Counts["worker"] != 1 {
		t.Errorf("counts after the next deploy: %v", rel.Counts)
	}
}

// TestScaleCountRecordsWhatHappened: a scale from the five machines there
// are to three is recorded as such, whatever the last release counted.
func TestScaleCountRecordsWhatHappened(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
	cfg := e.machines()[0].Config
	for i := 0; i < 2; i++ { // machines added beside the release (machine clone)
		if _, err := e.sup.Create(context.Background(), testApp, cloneConfig(cfg), supervisor.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	three := 3
	rel, err := e.d.Scale(context.Background(), testApp, ScaleRequest{Count: &three}, nil)
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("scale count: %v %+v", err, rel)
	}
	if rel.Description != "scale count app 5→3" {
		t.Errorf("recorded as %q, want %q", rel.Description, "scale count app 5→3")
	}
	e.requireServing(3, 1, "v1")
	rel, err = e.d.Scale(context.Background(), testApp, ScaleRequest{Count: &three}, nil)
	if err != nil || rel.Description != "scale count (no change)" {
		t.Errorf("a scale to the count there is: %v %q", err, rel.Description)
	}
}

// TestSecretsReleaseRecordsItsUser: a secrets roll-out (a restart with the
// current secrets) is recorded with the user who asked for it.
func TestSecretsReleaseRecordsItsUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{})
	rel, err := e.d.DeploySecrets(context.Background(), testApp, 0, "ci-token", nil)
	if err != nil || rel == nil || rel.Status != StatusComplete {
		t.Fatalf("secrets deploy: %v %+v", err, rel)
	}
	if rel.User != "ci-token" {
		t.Errorf("release recorded with user %q, want ci-token", rel.User)
	}
}
