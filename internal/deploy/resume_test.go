package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
)

// machineWrite decodes a write of a machine record ("" id if it is none).
func machineWrite(key string, value []byte) (id, state, group string) {
	rest, ok := strings.CutPrefix(key, "machines/"+testApp+"/")
	if !ok {
		return "", "", ""
	}
	if value == nil {
		return rest, "deleted", ""
	}
	var r supervisor.Record
	if json.Unmarshal(value, &r) != nil {
		return "", "", ""
	}
	g := types.DefaultProcessGroup
	if r.Config != nil && r.Config.Metadata[types.MetaProcessGroup] != "" {
		g = r.Config.Metadata[types.MetaProcessGroup]
	}
	return rest, r.State, g
}

// TestResumeInterruptedDeploy kills the daemon at each step of a rolling
// deploy of v2 over three v1 machines (every write of the dead daemon
// after the kill point is lost, its machines run on), starts another on
// the same store and machines, and checks that the deploy was settled:
// rolled back (v2 failed, interrupted) before the rollout was done,
// finished (v2 complete) after; in both cases exactly three machines
// serve, no lease or run record is left, and the next deploy keeps three.
func TestResumeInterruptedDeploy(t *testing.T) {
	type point struct {
		name   string
		lines  []string // extra [deploy] lines of v2
		failV2 int      // the nth v2 machine fails its checks
		// kill says whether the daemon dies right after this write; old
		// are the v1 machines.
		kill func(old map[string]bool, key string, value []byte) bool
		done bool // the rollout was done: v2 is finished, not undone
	}
	nth := func(n int, f func(old map[string]bool, key string, value []byte) bool) func(map[string]bool, string, []byte) bool {
		seen := 0
		return func(old map[string]bool, key string, value []byte) bool {
			if f(old, key, value) {
				seen++
				return seen == n
			}
			return false
		}
	}
	newMachine := func(state string) func(map[string]bool, string, []byte) bool {
		return func(old map[string]bool, key string, value []byte) bool {
			id, st, g := machineWrite(key, value)
			return id != "" && !old[id] && st == state && g == "app"
		}
	}
	oldMachine := func(state string) func(map[string]bool, string, []byte) bool {
		return func(old map[string]bool, key string, value []byte) bool {
			id, st, _ := machineWrite(key, value)
			return old[id] && st == state
		}
	}
	runPhase := func(phase string) func(map[string]bool, string, []byte) bool {
		return func(_ map[string]bool, key string, value []byte) bool {
			var rec runRecord
			return key == runKey(testApp) && value != nil && json.Unmarshal(value, &rec) == nil && rec.Phase == phase
		}
	}
	points := []point{
		{name: "release recorded", kill: func(_ map[string]bool, key string, value []byte) bool {
			return key == releaseKey(testApp, 2) && strings.Contains(string(value), `"status":"running"`)
		}},
		{name: "release command machine created", lines: []string{`  release_command = "migrate exit 0"`},
			kill: func(old map[string]bool, key string, value []byte) bool {
				id, st, g := machineWrite(key, value)
				return id != "" && g == appconfig.ReleaseCommandGroup && st == types.StateStarted
			}},
		{name: "spearhead saved", kill: newMachine(types.StateStarting)},
		{name: "spearhead recorded in the run", kill: func(_ map[string]bool, key string, value []byte) bool {
			var rec runRecord
			return key == runKey(testApp) && value != nil && json.Unmarshal(value, &rec) == nil && len(rec.Created) > 0
		}},
		{name: "spearhead started", kill: newMachine(types.StateStarted)},
		{name: "first old machine stopping", kill: oldMachine(types.StateStopping)},
		{name: "first old machine stopped", kill: oldMachine(types.StateStopped)},
		{name: "third new machine started", kill: nth(3, newMachine(types.StateStarted))},
		{name: "second old machine stopped", kill: nth(2, oldMachine(types.StateStopped))},
		{name: "rolling back", failV2: 2, kill: runPhase(phaseRollback)},
		{name: "rollout done", kill: runPhase(phaseFinish), done: true},
		{name: "first old machine destroying", kill: oldMachine(types.StateDestroying), done: true},
		{name: "first old machine destroyed", kill: oldMachine("deleted"), done: true},
	}
	for _, pt := range points {
		t.Run(pt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
			old := map[string]bool{}
			for _, id := range e.requireServing(3, 1, "v1") {
				old[id] = true
			}
			e.mu.Lock()
			e.failNth["v2"] = pt.failV2
			e.mu.Unlock()
			e.ks.killAfter = func(key string, value []byte) bool { return pt.kill(old, key, value) }
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				_, _, _ = e.deploy("v2", Request{}, append([]string{`  wait_timeout = "1s"`}, pt.lines...)...)
			}()
			select {
			case <-e.ks.dead:
			case <-finished:
				t.Fatal("the deploy ended without reaching the kill point")
			case <-time.After(20 * time.Second):
				t.Fatal("the kill point was not reached within 20s")
			}

			e.restart()
			rel := e.release(2)
			if pt.done {
				if rel.Status != StatusComplete {
					t.Fatalf("release v2 after the restart: %s %q, want complete", rel.Status, rel.Reason)
				}
				e.requireServing(3, 2, "v2")
			} else {
				if rel.Status != StatusFailed || !strings.HasPrefix(rel.Reason, ReasonInterrupted) {
					t.Fatalf("release v2 after the restart: %s %q, want failed (interrupted)", rel.Status, rel.Reason)
				}
				ids := e.requireServing(3, 1, "v1")
				for _, id := range ids {
					if !old[id] {
						t.Fatalf("machine %s is not one of the old ones: %v", id, ids)
					}
				}
			}
			all, _ := e.sup.List(context.Background(), testApp)
			if len(all) != 3 {
				t.Errorf("%d machines left (release command's included), want 3", len(all))
			}
			for _, m := range all {
				if supervisor.LeaseActive(m, time.Now()) {
					t.Errorf("machine %s is still leased by %s (%s)", m.ID, m.LeaseOwner, m.LeaseDesc)
				}
			}
			if _, err := e.st.Get(context.Background(), runKey(testApp)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the run record is left: %v", err)
			}
			// The next deploy neither counts leftovers nor waits for leases.
			e.mu.Lock()
			e.failNth["v2"] = 0
			e.mu.Unlock()
			e.mustDeploy("v3", Request{})
			e.requireServing(3, 3, "v3")
		})
	}
}

// TestDeployCountsFromLastCompleteRelease: machines that exist beside the
// release's count (a crashed deploy's leftovers) do not raise it.
func TestDeployCountsFromLastCompleteRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
	ms := e.machines()
	// A leftover: a stopped copy of a v1 machine, as an interrupted
	// deploy used to leave.
	if _, err := e.sup.Create(context.Background(), testApp, ms[0].Config, supervisor.CreateOptions{SkipLaunch: true}); err != nil {
		t.Fatal(err)
	}
	rel := e.mustDeploy("v2", Request{})
	if rel.Counts["app"] != 2 {
		t.Fatalf("release counts %v, want app=2", rel.Counts)
	}
	e.requireServing(2, 2, "v2")
}
