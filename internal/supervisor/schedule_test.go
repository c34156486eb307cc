package supervisor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// TestSchedulerOncePerInterval: a scheduled machine is started once per
// interval by Tick, runs to its exit and stays stopped; a new supervisor
// on the same store (a daemon restart) does not start it again in the
// same interval.
func TestSchedulerOncePerInterval(t *testing.T) {
	opts, drv := fakeOptions(t)
	s := New(opts)
	defer s.Shutdown()
	t.Cleanup(func() {
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	ctx := context.Background()

	// restart "no" (flyctl's --restart no): a failed run waits for the
	// next interval.
	m, err := s.Create(ctx, "a", &types.MachineConfig{Image: "job:v1", Schedule: "hourly", Restart: &types.MachineRestart{Policy: types.RestartNo}}, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339, m.CreatedAt)
	hour := created.Truncate(time.Hour).Add(time.Hour) // the next interval
	if m.NextRunAt != hour.Format(time.RFC3339) {
		t.Errorf("next_run_at %q, want %s", m.NextRunAt, hour.Format(time.RFC3339))
	}
	sched := &Scheduler{Sup: s}
	tick := func(sc *Scheduler, at time.Time, want int) {
		t.Helper()
		got, err := sc.Tick(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("tick at %s started %v, want %d machine(s)", at.Format(time.RFC3339), got, want)
		}
	}
	runToExit := func(sup *Supervisor, code int) {
		t.Helper()
		if err := drv.Crash(m.ID, code); err != nil {
			t.Fatal(err)
		}
		if _, err := sup.Wait(ctx, "a", m.ID, types.StateStopped, "", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	tick(sched, created, 0) // not before its first interval
	tick(sched, hour.Add(time.Second), 1)
	tick(sched, hour.Add(2*time.Second), 0) // running: never twice
	runToExit(s, 3)
	tick(sched, hour.Add(10*time.Minute), 0) // stopped, same interval

	r, err := s.Get(ctx, "a", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != types.StateStopped {
		t.Errorf("after its run: %s, want stopped", r.State)
	}
	if r.LastRunAt == "" || r.NextRunAt != hour.Add(time.Hour).Format(time.RFC3339) {
		t.Errorf("last_run_at %q next_run_at %q, want the run and %s", r.LastRunAt, r.NextRunAt, hour.Add(time.Hour).Format(time.RFC3339))
	}
	var sawStart, sawExit bool
	for _, ev := range r.Events {
		if ev.Type == "start" && ev.Source == sourceScheduler {
			sawStart = true
		}
		if ev.Type == "exit" {
			exit, _ := ev.Request["exit_event"].(map[string]interface{})
			sawExit = fmt.Sprint(exit["exit_code"]) == "3"
		}
	}
	if !sawStart || !sawExit {
		t.Errorf("events %+v: want the scheduler's start and the exit with code 3", r.Events)
	}

	// A restarted daemon: a new supervisor on the same store.
	s.Shutdown()
	s2 := New(opts)
	defer s2.Shutdown()
	if err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	sched2 := &Scheduler{Sup: s2}
	tick(sched2, hour.Add(30*time.Minute), 0)
	tick(sched2, hour.Add(time.Hour+time.Second), 1) // the next interval
	runToExit(s2, 0)
	// Missed intervals are one run, not one per interval.
	tick(sched2, hour.Add(5*time.Hour), 1)
	runToExit(s2, 0)
	tick(sched2, hour.Add(5*time.Hour+time.Minute), 0)
	if n := drv.Starts(m.ID); n != 3 {
		t.Errorf("the job ran %d times, want 3", n)
	}
}

// TestSchedulerRaceStartsOnce: two schedulers on one store (two daemons
// for a moment, as in a reload) ticking at once start a due run once.
func TestSchedulerRaceStartsOnce(t *testing.T) {
	opts, drv := fakeOptions(t)
	a, b := New(opts), New(opts)
	defer a.Shutdown()
	defer b.Shutdown()
	t.Cleanup(func() {
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	ctx := context.Background()
	m, err := a.Create(ctx, "a", &types.MachineConfig{Image: "job:v1", Schedule: "*/5 * * * *"}, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour)
	results := make(chan int, 2)
	for _, s := range []*Supervisor{a, b} {
		go func() {
			got, err := (&Scheduler{Sup: s}).Tick(ctx, at)
			if err != nil {
				t.Error(err)
			}
			results <- len(got)
		}()
	}
	if n := <-results + <-results; n != 1 || drv.Starts(m.ID) != 1 {
		t.Errorf("two schedulers started the run %d times (driver: %d), want once", n, drv.Starts(m.ID))
	}
}
