package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/storetest"
)

func openLocal(t testing.TB, opts store.Options) *store.Local {
	t.Helper()
	s, err := store.OpenOptions(filepath.Join(t.TempDir(), "state.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openLocal(t, store.Options{}) })
}

// Small buffers and history exercise the lag and compaction paths of the
// same conformance suite.
func TestConformanceSmallLimits(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openLocal(t, store.Options{HistoryLimit: 200, WatchBuffer: 4})
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func put(t testing.TB, s store.Store, k, v string) int64 {
	t.Helper()
	r, err := s.Put(ctxT(t), k, []byte(v), store.AnyRevision)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReopenKeepsStateAndHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "state.db") // Open creates the dirs
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	r1 := put(t, s, "a", "1")
	r2 := put(t, s, "b", "2")
	if _, err := s.Delete(ctxT(t), "a", r1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	s, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if rev, _ := s.Revision(ctxT(t)); rev != r2+1 {
		t.Fatalf("revision after reopen = %d, want %d", rev, r2+1)
	}
	kv, err := s.Get(ctxT(t), "b")
	if err != nil || string(kv.Value) != "2" || kv.ModRevision != r2 {
		t.Fatalf("b after reopen = %+v, %v", kv, err)
	}
	ch, err := s.Watch(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PUT a", "PUT b", "DELETE a"} {
		ev := <-ch
		if got := ev.Type.String() + " " + ev.KV.Key; got != want {
			t.Fatalf("replay after reopen: %s, want %s", got, want)
		}
	}
	// Revisions continue from the stored counter.
	if r := put(t, s, "c", "3"); r != r2+2 {
		t.Fatalf("next revision %d, want %d", r, r2+2)
	}
}

func waitLive(t *testing.T, s *store.Local, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for store.LiveWatchers(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d live watchers, want %d", store.LiveWatchers(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchLaggingConsumerIsClosed(t *testing.T) {
	s := openLocal(t, store.Options{WatchBuffer: 8})
	ch, err := s.Watch(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Watch(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, s, 2)
	r0 := put(t, s, "sync", "x")
	<-ch
	<-other
	var last int64
	for i := 0; i < 20; i++ {
		// Nobody reads ch: writes must not block.
		last = put(t, s, fmt.Sprintf("k%d", i), "v")
		select {
		case ev := <-other:
			if ev.Revision != last {
				t.Fatalf("other watcher got %d, want %d", ev.Revision, last)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("reading watcher starved")
		}
	}
	var got []int64
	for ev := range ch {
		got = append(got, ev.Revision)
	}
	if !errors.Is(store.WatchErr(ch), store.ErrWatcherLagged) {
		t.Fatalf("WatchErr = %v, want ErrWatcherLagged", store.WatchErr(ch))
	}
	if len(got) != 8 || got[0] != r0+1 || got[7] != r0+8 {
		t.Fatalf("lagging watcher received %v, want the 8 revisions after %d", got, r0)
	}
	// Recovery: re-watch from the last revision received.
	ch2, err := s.Watch(ctxT(t), "", got[len(got)-1])
	if err != nil {
		t.Fatal(err)
	}
	for want := got[len(got)-1] + 1; want <= last; want++ {
		if ev := <-ch2; ev.Revision != want {
			t.Fatalf("re-watch got %d, want %d", ev.Revision, want)
		}
	}
}

func TestWatchLagDropsWholeRevisions(t *testing.T) {
	s := openLocal(t, store.Options{WatchBuffer: 5})
	ch, err := s.Watch(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, s, 1)
	r0 := put(t, s, "sync", "x")
	<-ch
	ops := func(n int) []store.Op {
		var o []store.Op
		for i := 0; i < n; i++ {
			o = append(o, store.Op{Key: fmt.Sprintf("t%d", i), Value: []byte("v"), Expect: store.AnyRevision})
		}
		return o
	}
	if _, err := s.Txn(ctxT(t), ops(3)); err != nil { // fits: 3 of 5
		t.Fatal(err)
	}
	if _, err := s.Txn(ctxT(t), ops(3)); err != nil { // does not fit: dropped, not split
		t.Fatal(err)
	}
	n := 0
	for ev := range ch {
		if ev.Revision != r0+1 {
			t.Fatalf("got event of revision %d, want only %d", ev.Revision, r0+1)
		}
		n++
	}
	if n != 3 || !errors.Is(store.WatchErr(ch), store.ErrWatcherLagged) {
		t.Fatalf("got %d events, WatchErr %v", n, store.WatchErr(ch))
	}
}

func TestHistoryIsBounded(t *testing.T) {
	s := openLocal(t, store.Options{HistoryLimit: 10})
	var revs []int64
	for i := 0; i < 25; i++ {
		revs = append(revs, put(t, s, fmt.Sprintf("h/%d", i%3), fmt.Sprint(i)))
	}
	last := revs[len(revs)-1]
	// Revisions <= last-10 are gone.
	_, err := s.Watch(ctxT(t), "", last-11)
	if !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Watch from compacted revision: %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(ctxT(t), "", last-10)
	if err != nil {
		t.Fatalf("Watch from oldest kept revision: %v", err)
	}
	for want := last - 9; want <= last; want++ {
		if ev := <-ch; ev.Revision != want {
			t.Fatalf("replay got %d, want %d", ev.Revision, want)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestWatchCompactedDuringReplay(t *testing.T) {
	s := openLocal(t, store.Options{HistoryLimit: 20, WatchBuffer: 2})
	for i := 0; i < 10; i++ {
		put(t, s, "k", fmt.Sprint(i))
	}
	ch, err := s.Watch(ctxT(t), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The watcher is stuck replaying (buffer 2, nobody reads) while history
	// moves on past its position.
	for i := 0; i < 40; i++ {
		put(t, s, "k", fmt.Sprint(i))
	}
	var got []int64
	for ev := range ch {
		got = append(got, ev.Revision)
	}
	if !errors.Is(store.WatchErr(ch), store.ErrCompacted) {
		t.Fatalf("WatchErr = %v (after %v), want ErrCompacted", store.WatchErr(ch), got)
	}
	for i, r := range got {
		if r != int64(i+1) {
			t.Fatalf("replayed %v: not consecutive from 1", got)
		}
	}
}

func TestWatchReplaySpansChunks(t *testing.T) {
	s := openLocal(t, store.Options{NoSync: true})
	// More history entries than one replay chunk (512), including one Txn
	// whose events straddle the chunk boundary.
	for i := 0; i < 500; i++ {
		put(t, s, fmt.Sprintf("r/%d", i%7), fmt.Sprint(i))
	}
	var ops []store.Op
	for i := 0; i < 30; i++ {
		ops = append(ops, store.Op{Key: fmt.Sprintf("r/t%02d", i), Value: []byte("t"), Expect: store.AnyRevision})
	}
	txnRev, err := s.Txn(ctxT(t), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		put(t, s, fmt.Sprintf("r/%d", i%7), fmt.Sprint(i))
	}
	last, _ := s.Revision(ctxT(t))
	ch, err := s.Watch(ctxT(t), "r/", 0)
	if err != nil {
		t.Fatal(err)
	}
	want, inTxn := int64(1), 0
	for want <= last {
		ev := <-ch
		if ev.Revision != want {
			t.Fatalf("got revision %d, want %d", ev.Revision, want)
		}
		if ev.Revision == txnRev {
			if ev.KV.Key != fmt.Sprintf("r/t%02d", inTxn) {
				t.Fatalf("txn event %d is %s", inTxn, ev.KV.Key)
			}
			inTxn++
			if inTxn < len(ops) {
				continue
			}
		}
		want++
	}
	if inTxn != len(ops) {
		t.Fatalf("got %d txn events, want %d", inTxn, len(ops))
	}
}

func TestOpenFailsFastWhenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	s2, err := store.OpenOptions(path, store.Options{LockTimeout: 200 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v", d)
	}
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error = %v, want ErrLocked naming the file", err)
	}
	// Once released, it opens.
	s.Close()
	s3, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open after release: %v", err)
	}
	s3.Close()
}

func setSchema(t *testing.T, path string, v uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), binaryU64(v))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func binaryU64(v uint64) []byte {
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "a", "1")
	s.Close()
	newer := uint64(store.SchemaVersion + 1)
	setSchema(t, path, newer)
	before, _ := os.ReadFile(path)

	_, err = store.Open(path)
	want := fmt.Sprintf("state was written by a newer hangar (schema %d); upgrade hangar", newer)
	if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open of newer schema: %v, want error containing %q", err, want)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("failed Open modified the file")
	}
	// The lock was released: the file can be opened again (by bbolt here).
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("file still locked after refused Open: %v", err)
	}
	db.Close()
}

func TestOpenRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
	db.Close()
	if _, err := store.Open(path); err == nil || !strings.Contains(err.Error(), "not a hangar state file") {
		t.Fatalf("Open of foreign bbolt file: %v", err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database", 1000)), 0o600)
	if _, err := store.Open(garbage); err == nil {
		t.Fatal("Open of garbage succeeded")
	}
}
