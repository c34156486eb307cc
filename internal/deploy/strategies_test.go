package deploy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStrategies deploys v1 on three machines, then v2 with each strategy,
// and checks that v2 replaced every machine, that traffic never had fewer
// machines than the count (but immediate's), and the peak each strategy
// reaches.
func TestStrategies(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		low      int // fewest routable machines during the deploy
		high     int // most
	}{
		{Rolling, 3, 4},   // one spearhead, then batches of one (0.33 of 3)
		{Canary, 3, 5},    // the canary adds one; the next batch adds one before any old one goes
		{BlueGreen, 3, 6}, // all green up before any blue goes
		{Immediate, 0, 3},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
			old := e.requireServing(3, 1, "v1")

			e.rt.watch()
			rel, msgs, err := e.deploy("v2", Request{Strategy: tc.strategy})
			if err != nil || rel.Status != StatusComplete || rel.Strategy != tc.strategy {
				t.Fatalf("deploy v2: %v %+v\n%s", err, rel, strings.Join(msgs, "\n"))
			}
			ids := e.requireServing(3, 2, "v2")
			for _, id := range ids {
				for _, o := range old {
					if id == o {
						t.Fatalf("old machine %s is still there: %v", o, ids)
					}
				}
			}
			low, high := e.rt.bounds()
			if tc.strategy == Immediate {
				low = 0 // by design: no checks awaited, all replaced at once
			}
			if low != tc.low || high != tc.high {
				t.Errorf("routable machines during the deploy: between %d and %d, want %d and %d", low, high, tc.low, tc.high)
			}
			if rel.Counts["app"] != 3 {
				t.Errorf("release counts %v, want app=3", rel.Counts)
			}
		})
	}
}

// TestReleaseCommand runs release_command before any machine changes: its
// output reaches the deploying user, its machine is removed, and a
// non-zero exit fails the release with the old machines untouched.
func TestReleaseCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
	old := e.requireServing(2, 1, "v1")

	rel, msgs, err := e.deploy("v2", Request{}, `  release_command = "migrate exit 3"`)
	if err == nil || rel.Status != StatusFailed || !strings.Contains(rel.Reason, "exit code 3") {
		t.Fatalf("a failing release command: %v %+v", err, rel)
	}
	out := strings.Join(msgs, "\n")
	if !strings.Contains(out, "migrating v2") || !strings.Contains(out, "migrated") {
		t.Errorf("release command output not streamed:\n%s", out)
	}
	if ids := e.requireServing(2, 1, "v1"); !equalSets(ids, old) {
		t.Fatalf("machines changed by a failed release command: %v, were %v", ids, old)
	}
	for _, id := range old {
		if n := e.drv.Starts(id); n != 1 {
			t.Errorf("old machine %s started %d times, want once", id, n)
		}
	}

	rel, msgs, err = e.deploy("v3", Request{}, `  release_command = "migrate exit 0"`)
	if err != nil || rel.Status != StatusComplete {
		t.Fatalf("deploy with a passing release command: %v %+v\n%s", err, rel, strings.Join(msgs, "\n"))
	}
	e.requireServing(2, 3, "v3")
	all, _ := e.sup.List(t.Context(), testApp)
	if len(all) != 2 {
		t.Errorf("the release command's machine was not removed: %d machines", len(all))
	}
}

// TestAutomaticRollback fails deploys at several points and checks that
// the previous release serves on its own machines afterwards.
func TestAutomaticRollback(t *testing.T) {
	t.Run("spearhead unhealthy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
		old := e.requireServing(3, 1, "v1")
		e.setHealth("v2", http.StatusInternalServerError)
		rel, _, err := e.deploy("v2", Request{}, `  wait_timeout = "1s"`)
		if err == nil || rel.Status != StatusFailed || !strings.Contains(rel.Reason, "not healthy") {
			t.Fatalf("deploy of an unhealthy release: %v %+v", err, rel)
		}
		if ids := e.requireServing(3, 1, "v1"); !equalSets(ids, old) {
			t.Fatalf("after rollback: %v, want the old %v", ids, old)
		}
	})
	// The second machine starts (without traffic) during the spearhead's
	// smoke window: when it fails, no old machine has gone yet; when the
	// third fails, the two old machines the first two replaced are
	// started again.
	for _, c := range []struct {
		name      string
		fail      int
		restarted int
	}{
		{"second batch unhealthy", 2, 0},
		{"third batch unhealthy", 3, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustDeploy("v1", Request{Counts: map[string]int{"app": 3}})
			old := e.requireServing(3, 1, "v1")
			e.mu.Lock()
			e.failNth["v2"] = c.fail
			e.mu.Unlock()
			rel, _, err := e.deploy("v2", Request{}, `  wait_timeout = "1s"`)
			if err == nil || rel.Status != StatusFailed {
				t.Fatalf("deploy: %v %+v", err, rel)
			}
			if ids := e.requireServing(3, 1, "v1"); !equalSets(ids, old) {
				t.Fatalf("after rollback: %v, want the old %v", ids, old)
			}
			restarted := 0
			for _, id := range old {
				if e.drv.Starts(id) == 2 {
					restarted++
				}
			}
			if restarted != c.restarted {
				t.Errorf("%d old machines were stopped and started again, want %d", restarted, c.restarted)
			}
		})
	}
	t.Run("crash-looping in the smoke window", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.d.SmokeWindow = 300 * time.Millisecond
		e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
		old := e.requireServing(2, 1, "v1")
		e.mu.Lock()
		e.crashAfter["v2"] = 100 * time.Millisecond
		e.mu.Unlock()
		rel, _, err := e.deploy("v2", Request{Strategy: Canary})
		if err == nil || rel.Status != StatusFailed || !strings.Contains(rel.Reason, "crash-looping") {
			t.Fatalf("deploy: %v %+v", err, rel)
		}
		if ids := e.requireServing(2, 1, "v1"); !equalSets(ids, old) {
			t.Fatalf("after rollback: %v, want the old %v", ids, old)
		}
	})
	t.Run("bluegreen unhealthy", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.mustDeploy("v1", Request{Counts: map[string]int{"app": 2}})
		old := e.requireServing(2, 1, "v1")
		e.rt.watch()
		e.setHealth("v2", http.StatusServiceUnavailable)
		rel, _, err := e.deploy("v2", Request{Strategy: BlueGreen}, `  wait_timeout = "1s"`)
		if err == nil || rel.Status != StatusFailed {
			t.Fatalf("deploy: %v %+v", err, rel)
		}
		if ids := e.requireServing(2, 1, "v1"); !equalSets(ids, old) {
			t.Fatalf("after rollback: %v, want the old %v", ids, old)
		}
		if low, high := e.rt.bounds(); low != 2 || high != 2 {
			t.Errorf("routable machines during a failed blue-green deploy: %d-%d, want 2 throughout", low, high)
		}
	})
}
