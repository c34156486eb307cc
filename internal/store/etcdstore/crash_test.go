package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// writeLog is what concurrent writers were told: acked writes must survive,
// failed ones may or may not have been applied.
type writeLog struct {
	mu     sync.Mutex
	acked  map[string]int64 // key -> revision of its acknowledged Put
	failed map[string]error
}

func (l *writeLog) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// runWriters starts n writers that create fresh keys until ctx ends.
func runWriters(ctx context.Context, s store.Store, n int, l *writeLog) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w/%d/%06d", w, i)
				rev, err := s.Put(ctx, key, []byte(key), 0)
				l.mu.Lock()
				if err == nil {
					l.acked[key] = rev
				} else {
					l.failed[key] = err
				}
				l.mu.Unlock()
			}
		}()
	}
	return &wg
}

// checkAcked verifies that every acknowledged write is in the store with
// the revision it was acknowledged at.
func checkAcked(t *testing.T, s store.Store, l *writeLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kvs, err := s.List(ctx, "w/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	have := make(map[string]int64, len(kvs))
	for _, kv := range kvs {
		if string(kv.Value) != kv.Key {
			t.Fatalf("key %s holds %q", kv.Key, kv.Value)
		}
		have[kv.Key] = kv.ModRevision
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, rev := range l.acked {
		got, ok := have[k]
		if !ok {
			t.Fatalf("acknowledged write %s (revision %d) is lost", k, rev)
		}
		if got != rev {
			t.Fatalf("acknowledged write %s at revision %d now has revision %d", k, rev, got)
		}
	}
	extra := 0
	for k := range have {
		if _, ok := l.acked[k]; !ok {
			if _, ok := l.failed[k]; !ok {
				t.Fatalf("key %s in the store was never written", k)
			}
			extra++
		}
	}
	t.Logf("%d acknowledged writes all present; %d failed writes, %d of them applied anyway", len(l.acked), len(l.failed), extra)
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMain(m *testing.M) {
	etcdtest.RunMemberIfAsked() // child processes of TestMemberKill9
	os.Exit(m.Run())
}

// member is an etcd member the crash test can stop and restart.
type member interface {
	String() string
	IsLeader() bool
	Running() bool
	Stop()
	Restart(t testing.TB)
	WaitReady(t testing.TB)
}

// TestMemberCrash runs writers against a 3-member cluster, stops the leader
// hard mid-write, and checks that writes go on through the other two with
// no acknowledged write lost; then stops a second member (no quorum: writes
// and reads fail with ErrUnavailable, promptly and with a hint) and
// restarts one (writes resume, still nothing lost).
func TestMemberCrash(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	var ms []member
	for _, m := range c.Members {
		ms = append(ms, m)
	}
	crashTest(t, c.Endpoints(), ms)
}

// TestMemberKill9 is TestMemberCrash with members in child processes that
// fsync, killed with SIGKILL: the kill -9 of a voting member's process.
func TestMemberKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd members in child processes")
	}
	c := etcdtest.StartProcessCluster(t, 3)
	var ms []member
	for _, m := range c.Members {
		ms = append(ms, m)
	}
	crashTest(t, c.Endpoints(), ms)
}

func crashTest(t *testing.T, endpoints []string, members []member) {
	s := openOn(t, endpoints, etcdstore.Options{RequestTimeout: 3 * time.Second})
	l := &writeLog{acked: map[string]int64{}, failed: map[string]error{}}

	// A watcher follows every write through the crash, re-watching from
	// the last revision it received when its watch breaks.
	wctx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	seen := &watchLog{}
	go seen.follow(wctx, s)

	ctx, stop := context.WithCancel(context.Background())
	wg := runWriters(ctx, s, 4, l)
	defer func() { stop(); wg.Wait() }()
	waitFor(t, "writes before the crash", 30*time.Second, func() bool { return l.ackedCount() >= 200 })

	var leader member
	waitFor(t, "a leader", 10*time.Second, func() bool {
		for _, m := range members {
			if m.IsLeader() {
				leader = m
				return true
			}
		}
		return false
	})
	before := l.ackedCount()
	t0 := time.Now()
	leader.Stop()
	t.Logf("stopped leader %s hard after %d acked writes", leader, before)
	waitFor(t, "writes after the leader crashed", 30*time.Second, func() bool { return l.ackedCount() >= before+200 })
	t.Logf("200 more writes acked %s after the crash", time.Since(t0).Round(time.Millisecond))
	stop()
	wg.Wait()
	checkAcked(t, s, l)
	seen.check(t, l)

	// Quorum loss: 1 of 3 members left.
	var second member
	for _, m := range members {
		if m.Running() {
			second = m
			break
		}
	}
	second.Stop()
	t1 := time.Now()
	var err error
	waitFor(t, "writes to fail without quorum", 30*time.Second, func() bool {
		_, err = s.Put(context.Background(), "noquorum", []byte("x"), store.AnyRevision)
		return err != nil
	})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "majority of the etcd members") {
		t.Fatalf("write without quorum: %v, want ErrUnavailable with a hint", err)
	}
	t.Logf("write without quorum failed after %s: %v", time.Since(t1).Round(time.Millisecond), err)
	if _, err := s.Get(context.Background(), "w/0/000000"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read without quorum: %v, want ErrUnavailable", err)
	}

	// A member returns: quorum again, writes resume.
	leader.Restart(t)
	leader.WaitReady(t)
	t2 := time.Now()
	waitFor(t, "writes to resume with quorum back", 30*time.Second, func() bool {
		_, err = s.Put(context.Background(), "w/back", []byte("w/back"), 0)
		return err == nil || errors.Is(err, store.ErrConflict) // an earlier try may have landed
	})
	t.Logf("writes resumed %s after the member returned", time.Since(t2).Round(time.Millisecond))
	l.mu.Lock()
	l.failed["w/back"] = nil
	l.mu.Unlock()
	checkAcked(t, s, l)
}

// watchLog records what a watcher of "w/" received across broken watches.
type watchLog struct {
	mu       sync.Mutex
	revs     map[string]int64 // key -> revision of its put event
	last     int64
	rewatch  int
	problems []string
}

func (w *watchLog) follow(ctx context.Context, s store.Store) {
	w.revs = map[string]int64{}
	for ctx.Err() == nil {
		w.mu.Lock()
		from := w.last
		w.mu.Unlock()
		ch, err := s.Watch(ctx, "w/", from)
		if err != nil {
			time.Sleep(50 * time.Millisecond) // no quorum yet
			continue
		}
		for ev := range ch {
			w.mu.Lock()
			if ev.Revision <= w.last {
				w.problems = append(w.problems, fmt.Sprintf("revision %d after %d (repeated or out of order)", ev.Revision, w.last))
			}
			w.last = ev.Revision
			w.revs[ev.KV.Key] = ev.Revision
			w.mu.Unlock()
		}
		err = store.WatchErr(ch)
		w.mu.Lock()
		if err != nil && !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrWatcherLagged) {
			w.problems = append(w.problems, fmt.Sprintf("watch ended with %v", err))
		}
		w.rewatch++
		w.mu.Unlock()
	}
}

// check waits until the watcher has seen every acknowledged write, at the
// revision it was acknowledged at.
func (w *watchLog) check(t *testing.T, l *writeLog) {
	t.Helper()
	l.mu.Lock()
	var maxRev int64
	for _, r := range l.acked {
		maxRev = max(maxRev, r)
	}
	l.mu.Unlock()
	waitFor(t, "the watcher to catch up", 30*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.last >= maxRev
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range w.problems {
		t.Errorf("watcher: %s", p)
	}
	for k, r := range l.acked {
		if w.revs[k] != r {
			t.Fatalf("watcher saw %s at revision %d, acknowledged at %d", k, w.revs[k], r)
		}
	}
	t.Logf("the watcher saw all %d acknowledged writes in order (%d re-watches)", len(l.acked), w.rewatch)
}
