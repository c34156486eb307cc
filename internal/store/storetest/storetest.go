// Package storetest is the conformance suite every store.Store implementation
// must pass. Call Run from the implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... fresh, empty store; t.Cleanup(close) ... })
//	}
//
// open must return a new, empty store for each call and arrange for it to be
// closed when t ends (the suite may also close it itself; Close must be
// idempotent). Run it with -race.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// Run runs the conformance suite against stores returned by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutCAS", testPutCAS},
		{"DeleteCAS", testDeleteCAS},
		{"Revisions", testRevisions},
		{"ValuesAreCopied", testValuesAreCopied},
		{"InvalidRequests", testInvalid},
		{"List", testList},
		{"TxnCommit", testTxnCommit},
		{"TxnAtomicity", testTxnAtomicity},
		{"TxnEmpty", testTxnEmpty},
		{"JSON", testJSON},
		{"UpdateJSON", testUpdateJSON},
		{"UpdateJSONConcurrent", testUpdateJSONConcurrent},
		{"CanceledContext", testCanceledContext},
		{"WatchReplayThenLive", testWatchReplayThenLive},
		{"WatchFromNow", testWatchFromNow},
		{"WatchFromFuture", testWatchFromFuture},
		{"WatchTxnEvents", testWatchTxnEvents},
		{"WatchCancel", testWatchCancel},
		{"WatchConcurrentWriters", testWatchConcurrentWriters},
		{"WatchSlowConsumer", testWatchSlowConsumer},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, s store.Store, key, val string, expect int64) int64 {
	t.Helper()
	rev, err := s.Put(ctxT(t), key, []byte(val), expect)
	if err != nil {
		t.Fatalf("Put(%q, expect %d): %v", key, expect, err)
	}
	return rev
}

func mustGet(t *testing.T, s store.Store, key string) store.KV {
	t.Helper()
	kv, err := s.Get(ctxT(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func wantRev(t *testing.T, s store.Store, want int64) {
	t.Helper()
	got, err := s.Revision(ctxT(t))
	if err != nil {
		t.Fatalf("Revision: %v", err)
	}
	if got != want {
		t.Fatalf("Revision = %d, want %d", got, want)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	_, err := s.Get(ctxT(t), "no/such/key")
	wantErr(t, "Get missing", err, store.ErrNotFound)
	if !strings.Contains(err.Error(), `"no/such/key"`) {
		t.Errorf("ErrNotFound should name the key: %v", err)
	}
	wantRev(t, s, 0)
}

func testPutCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1 := mustPut(t, s, "a", "1", 0)
	if r1 <= 0 {
		t.Fatalf("first revision %d, want > 0", r1)
	}
	// expect 0: must not exist.
	_, err := s.Put(ctx, "a", []byte("x"), 0)
	wantErr(t, "Put existing with expect 0", err, store.ErrConflict)
	// stale revision.
	r2 := mustPut(t, s, "a", "2", r1)
	_, err = s.Put(ctx, "a", []byte("x"), r1)
	wantErr(t, "Put with stale revision", err, store.ErrConflict)
	// revision of a missing key.
	_, err = s.Put(ctx, "b", []byte("x"), r2)
	wantErr(t, "Put missing key with expect > 0", err, store.ErrConflict)
	// unconditional.
	r3 := mustPut(t, s, "a", "3", store.AnyRevision)
	r4 := mustPut(t, s, "b", "1", store.AnyRevision)
	if !(r1 < r2 && r2 < r3 && r3 < r4) {
		t.Fatalf("revisions not increasing: %d %d %d %d", r1, r2, r3, r4)
	}
	kv := mustGet(t, s, "a")
	if string(kv.Value) != "3" || kv.CreateRevision != r1 || kv.ModRevision != r3 || kv.Key != "a" {
		t.Fatalf("Get a = %+v, want value 3 create %d mod %d", kv, r1, r3)
	}
	// failed writes change nothing.
	wantRev(t, s, r4)
}

func testDeleteCAS(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.Delete(ctx, "d", store.AnyRevision)
	wantErr(t, "Delete missing", err, store.ErrNotFound)
	_, err = s.Delete(ctx, "d", 5)
	wantErr(t, "Delete missing with expect", err, store.ErrNotFound)
	r1 := mustPut(t, s, "d", "v", 0)
	r2 := mustPut(t, s, "d", "w", r1)
	_, err = s.Delete(ctx, "d", r1)
	wantErr(t, "Delete with stale revision", err, store.ErrConflict)
	_, err = s.Delete(ctx, "d", 0)
	wantErr(t, "Delete existing with expect 0", err, store.ErrConflict)
	r3, err := s.Delete(ctx, "d", r2)
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if r3 <= r2 {
		t.Fatalf("delete revision %d <= %d", r3, r2)
	}
	_, err = s.Get(ctx, "d")
	wantErr(t, "Get deleted", err, store.ErrNotFound)
	// Re-creating gets a fresh CreateRevision.
	r4 := mustPut(t, s, "d", "again", 0)
	kv := mustGet(t, s, "d")
	if kv.CreateRevision != r4 || kv.ModRevision != r4 {
		t.Fatalf("recreated key = %+v, want create=mod=%d", kv, r4)
	}
	r5, err := s.Delete(ctx, "d", store.AnyRevision)
	if err != nil || r5 <= r4 {
		t.Fatalf("unconditional Delete = %d, %v", r5, err)
	}
	wantRev(t, s, r5)
}

func testRevisions(t *testing.T, s store.Store) {
	// One global counter across keys; every successful write advances it by one.
	var last int64
	for i := 0; i < 10; i++ {
		r := mustPut(t, s, fmt.Sprintf("k%d", i%3), "v", store.AnyRevision)
		if last != 0 && r != last+1 {
			t.Fatalf("revision %d after %d, want consecutive", r, last)
		}
		last = r
		wantRev(t, s, r)
	}
}

func testValuesAreCopied(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	buf := []byte("hello")
	mustPut(t, s, "c", string(buf), 0)
	rev, err := s.Put(ctx, "c2", buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf[0] = 'J'
	kv := mustGet(t, s, "c2")
	if string(kv.Value) != "hello" || kv.ModRevision != rev {
		t.Fatalf("stored value changed with caller's buffer: %q", kv.Value)
	}
	kv.Value[0] = 'Y'
	if kv2 := mustGet(t, s, "c2"); string(kv2.Value) != "hello" {
		t.Fatalf("stored value changed with Get result: %q", kv2.Value)
	}
	// Empty values round-trip as empty.
	mustPut(t, s, "empty", "", 0)
	if kv := mustGet(t, s, "empty"); len(kv.Value) != 0 {
		t.Fatalf("empty value = %q", kv.Value)
	}
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if _, err := s.Put(ctx, "", []byte("x"), store.AnyRevision); err == nil {
		t.Error("Put with empty key succeeded")
	}
	if _, err := s.Put(ctx, "k", []byte("x"), -2); err == nil {
		t.Error("Put with expect -2 succeeded")
	}
	if _, err := s.Txn(ctx, []store.Op{{Key: "k", Value: []byte("1"), Expect: store.AnyRevision}, {Key: "k", Delete: true, Expect: store.AnyRevision}}); err == nil {
		t.Error("Txn with a duplicate key succeeded")
	}
	wantRev(t, s, 0)
}

func testList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	keys := []string{"apps/b", "apps/a", "apps", "apps/a/x", "appsx", "machines/1", "a"}
	for _, k := range keys {
		mustPut(t, s, k, "v:"+k, 0)
	}
	check := func(prefix string, want ...string) {
		t.Helper()
		kvs, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, kv.Key)
			if string(kv.Value) != "v:"+kv.Key || kv.ModRevision == 0 || kv.CreateRevision == 0 {
				t.Fatalf("List(%q) entry %+v", prefix, kv)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("List(%q) = %v, want %v", prefix, got, want)
		}
	}
	check("apps/", "apps/a", "apps/a/x", "apps/b")
	check("apps", "apps", "apps/a", "apps/a/x", "apps/b", "appsx")
	check("", "a", "apps", "apps/a", "apps/a/x", "apps/b", "appsx", "machines/1")
	check("nothing/")
	check("machines/1", "machines/1")
	if _, err := s.Delete(ctx, "apps/a", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	check("apps/", "apps/a/x", "apps/b")
}

func testTxnCommit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1 := mustPut(t, s, "x", "1", 0)
	mustPut(t, s, "gone", "bye", 0)
	rev, err := s.Txn(ctx, []store.Op{
		{Key: "x", Value: []byte("2"), Expect: r1},
		{Key: "y", Value: []byte("new"), Expect: 0},
		{Key: "z", Value: []byte("any"), Expect: store.AnyRevision},
		{Key: "gone", Delete: true, Expect: store.AnyRevision},
	})
	if err != nil {
		t.Fatalf("Txn: %v", err)
	}
	wantRev(t, s, rev)
	for k, v := range map[string]string{"x": "2", "y": "new", "z": "any"} {
		kv := mustGet(t, s, k)
		if string(kv.Value) != v || kv.ModRevision != rev {
			t.Fatalf("after Txn %s = %+v, want %q at %d", k, kv, v, rev)
		}
	}
	if kv := mustGet(t, s, "x"); kv.CreateRevision != r1 {
		t.Fatalf("x CreateRevision = %d, want %d", kv.CreateRevision, r1)
	}
	_, err = s.Get(ctx, "gone")
	wantErr(t, "Get deleted in txn", err, store.ErrNotFound)
}

func testTxnAtomicity(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1 := mustPut(t, s, "a", "1", 0)
	r2 := mustPut(t, s, "b", "1", 0)
	snapshot := func() string {
		kvs, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, kv := range kvs {
			fmt.Fprintf(&b, "%s=%s@%d/%d;", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision)
		}
		return b.String()
	}
	before := snapshot()
	cases := []struct {
		name string
		ops  []store.Op
		want error
	}{
		{"last op conflicts", []store.Op{
			{Key: "a", Value: []byte("2"), Expect: r1},
			{Key: "c", Value: []byte("new"), Expect: 0},
			{Key: "b", Value: []byte("2"), Expect: r1}, // stale
		}, store.ErrConflict},
		{"first op conflicts", []store.Op{
			{Key: "a", Value: []byte("2"), Expect: 0}, // exists
			{Key: "b", Value: []byte("2"), Expect: r2},
		}, store.ErrConflict},
		{"delete of missing key", []store.Op{
			{Key: "a", Delete: true, Expect: r1},
			{Key: "missing", Delete: true, Expect: store.AnyRevision},
		}, store.ErrNotFound},
		{"put expects missing key", []store.Op{
			{Key: "b", Delete: true, Expect: r2},
			{Key: "nope", Value: []byte("x"), Expect: 7},
		}, store.ErrConflict},
	}
	for _, c := range cases {
		_, err := s.Txn(ctx, c.ops)
		wantErr(t, c.name, err, c.want)
		if after := snapshot(); after != before {
			t.Fatalf("%s: failed Txn changed state:\nbefore %s\nafter  %s", c.name, before, after)
		}
		wantRev(t, s, r2)
	}
}

func testTxnEmpty(t *testing.T, s store.Store) {
	r := mustPut(t, s, "a", "1", 0)
	got, err := s.Txn(ctxT(t), nil)
	if err != nil || got != r {
		t.Fatalf("empty Txn = %d, %v; want %d, nil", got, err, r)
	}
	wantRev(t, s, r)
}

type doc struct {
	Name  string   `json:"name"`
	N     int      `json:"n"`
	Items []string `json:"items,omitempty"`
}

func testJSON(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var d doc
	_, err := store.GetJSON(ctx, s, "doc", &d)
	wantErr(t, "GetJSON missing", err, store.ErrNotFound)
	r1, err := store.PutJSON(ctx, s, "doc", doc{Name: "one", N: 1, Items: []string{"a"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := store.GetJSON(ctx, s, "doc", &d)
	if err != nil || rev != r1 || d.Name != "one" || d.N != 1 || len(d.Items) != 1 {
		t.Fatalf("GetJSON = %+v, %d, %v", d, rev, err)
	}
	_, err = store.PutJSON(ctx, s, "doc", doc{Name: "two"}, 0)
	wantErr(t, "PutJSON expect 0 on existing", err, store.ErrConflict)
	if _, err := store.PutJSON(ctx, s, "doc", doc{Name: "two"}, rev); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "bad", "{not json", 0)
	if _, err := store.GetJSON(ctx, s, "bad", &d); err == nil {
		t.Fatal("GetJSON of invalid JSON succeeded")
	}
	if _, err := store.PutJSON(ctx, s, "chan", make(chan int), store.AnyRevision); err == nil {
		t.Fatal("PutJSON of unencodable value succeeded")
	}
}

func testUpdateJSON(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Create when missing.
	got, rev, err := store.UpdateJSON(ctx, s, "u", func(cur *doc) (*doc, error) {
		if cur != nil {
			t.Errorf("cur = %+v, want nil", cur)
		}
		return &doc{Name: "u", N: 1}, nil
	})
	if err != nil || got == nil || got.N != 1 || rev == 0 {
		t.Fatalf("UpdateJSON create = %+v, %d, %v", got, rev, err)
	}
	// Modify.
	got, rev2, err := store.UpdateJSON(ctx, s, "u", func(cur *doc) (*doc, error) {
		cur.N++
		return cur, nil
	})
	if err != nil || got.N != 2 || rev2 <= rev {
		t.Fatalf("UpdateJSON modify = %+v, %d, %v", got, rev2, err)
	}
	// fn's error is returned and nothing is written.
	boom := errors.New("boom")
	_, _, err = store.UpdateJSON(ctx, s, "u", func(cur *doc) (*doc, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateJSON error = %v, want boom", err)
	}
	wantRev(t, s, rev2)
	// nil deletes.
	got, rev3, err := store.UpdateJSON(ctx, s, "u", func(cur *doc) (*doc, error) { return nil, nil })
	if err != nil || got != nil || rev3 <= rev2 {
		t.Fatalf("UpdateJSON delete = %+v, %d, %v", got, rev3, err)
	}
	_, err = s.Get(ctx, "u")
	wantErr(t, "Get after UpdateJSON delete", err, store.ErrNotFound)
	// nil on a missing key is a no-op.
	got, rev4, err := store.UpdateJSON(ctx, s, "u", func(cur *doc) (*doc, error) { return nil, nil })
	if err != nil || got != nil || rev4 != 0 {
		t.Fatalf("UpdateJSON no-op = %+v, %d, %v", got, rev4, err)
	}
	wantRev(t, s, rev3)
}

func testUpdateJSONConcurrent(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, _, err := store.UpdateJSON(ctx, s, "counter", func(cur *doc) (*doc, error) {
					if cur == nil {
						cur = &doc{Name: "counter"}
					}
					cur.N++
					cur.Items = append(cur.Items, fmt.Sprintf("%d.%d", w, i))
					return cur, nil
				})
				if err != nil {
					errc <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("UpdateJSON: %v", err)
	}
	var d doc
	if _, err := store.GetJSON(ctx, s, "counter", &d); err != nil {
		t.Fatal(err)
	}
	if d.N != workers*each || len(d.Items) != workers*each {
		t.Fatalf("counter = %d with %d items, want %d: lost updates", d.N, len(d.Items), workers*each)
	}
	seen := map[string]bool{}
	for _, it := range d.Items {
		if seen[it] {
			t.Fatalf("update %s applied twice", it)
		}
		seen[it] = true
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	mustPut(t, s, "a", "1", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "b", []byte("1"), store.AnyRevision); err == nil {
		t.Error("Put with canceled ctx succeeded")
	}
	if _, err := s.Watch(ctx, "", 0); err == nil {
		t.Error("Watch with canceled ctx succeeded")
	}
	if _, _, err := store.UpdateJSON(ctx, s, "c", func(*doc) (*doc, error) { return &doc{}, nil }); err == nil {
		t.Error("UpdateJSON with canceled ctx succeeded")
	}
	if _, err := s.Get(ctxT(t), "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("write with canceled ctx was applied: %v", err)
	}
}

// recv reads one event or fails after a timeout.
func recv(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("watch channel closed early (WatchErr: %v)", store.WatchErr(ch))
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a watch event")
	}
	panic("unreachable")
}

func noEvent(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %+v", ev)
		}
		t.Fatalf("watch channel closed unexpectedly (WatchErr: %v)", store.WatchErr(ch))
	case <-time.After(50 * time.Millisecond):
	}
}

func waitClosed(t *testing.T, ch <-chan store.Event) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed")
		}
	}
}

func wantEvent(t *testing.T, ev store.Event, typ store.EventType, key, val string, rev int64) {
	t.Helper()
	if ev.Type != typ || ev.KV.Key != key || string(ev.KV.Value) != val || ev.Revision != rev || ev.KV.ModRevision != rev {
		t.Fatalf("event = {%v %q=%q rev %d mod %d}, want {%v %q=%q rev %d}",
			ev.Type, ev.KV.Key, ev.KV.Value, ev.Revision, ev.KV.ModRevision, typ, key, val, rev)
	}
}

func testWatchReplayThenLive(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1 := mustPut(t, s, "w/a", "1", 0)
	r2 := mustPut(t, s, "other", "x", 0)
	r3 := mustPut(t, s, "w/b", "1", 0)
	r4 := mustPut(t, s, "w/a", "2", r1)
	r5, err := s.Delete(ctx, "w/b", r3)
	if err != nil {
		t.Fatal(err)
	}
	_ = r2
	// From revision 0: everything under w/.
	ch, err := s.Watch(ctx, "w/", 0)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	wantEvent(t, recv(t, ch), store.EventPut, "w/a", "1", r1)
	wantEvent(t, recv(t, ch), store.EventPut, "w/b", "1", r3)
	ev := recv(t, ch)
	wantEvent(t, ev, store.EventPut, "w/a", "2", r4)
	if ev.KV.CreateRevision != r1 {
		t.Fatalf("replayed event CreateRevision %d, want %d", ev.KV.CreateRevision, r1)
	}
	ev = recv(t, ch)
	wantEvent(t, ev, store.EventDelete, "w/b", "1", r5) // delete carries the last value
	if ev.KV.CreateRevision != r3 {
		t.Fatalf("delete event CreateRevision %d, want %d", ev.KV.CreateRevision, r3)
	}
	noEvent(t, ch)
	// Live.
	mustPut(t, s, "other2", "x", 0)
	r7 := mustPut(t, s, "w/c", "live", 0)
	wantEvent(t, recv(t, ch), store.EventPut, "w/c", "live", r7)
	// A second watcher from the middle of history.
	ch2, err := s.Watch(ctx, "w/", r3)
	if err != nil {
		t.Fatal(err)
	}
	wantEvent(t, recv(t, ch2), store.EventPut, "w/a", "2", r4)
	wantEvent(t, recv(t, ch2), store.EventDelete, "w/b", "1", r5)
	wantEvent(t, recv(t, ch2), store.EventPut, "w/c", "live", r7)
	r8 := mustPut(t, s, "w/a", "3", store.AnyRevision)
	wantEvent(t, recv(t, ch), store.EventPut, "w/a", "3", r8)
	wantEvent(t, recv(t, ch2), store.EventPut, "w/a", "3", r8)
	noEvent(t, ch)
	noEvent(t, ch2)
}

func testWatchFromNow(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for i := 0; i < 5; i++ {
		mustPut(t, s, fmt.Sprintf("n/%d", i), "old", 0)
	}
	now, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, "", now)
	if err != nil {
		t.Fatal(err)
	}
	noEvent(t, ch)
	r := mustPut(t, s, "n/new", "new", 0)
	wantEvent(t, recv(t, ch), store.EventPut, "n/new", "new", r)
}

func testWatchFromFuture(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r1 := mustPut(t, s, "f", "1", 0)
	ch, err := s.Watch(ctx, "f", r1+2)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "f", "2", store.AnyRevision)
	mustPut(t, s, "f", "3", store.AnyRevision)
	r4 := mustPut(t, s, "f", "4", store.AnyRevision)
	wantEvent(t, recv(t, ch), store.EventPut, "f", "4", r4)
}

func testWatchTxnEvents(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "t/del", "last", 0)
	start, _ := s.Revision(ctx)
	live, err := s.Watch(ctx, "t/", start)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := s.Txn(ctx, []store.Op{
		{Key: "t/b", Value: []byte("b"), Expect: 0},
		{Key: "t/a", Value: []byte("a"), Expect: 0},
		{Key: "skip", Value: []byte("s"), Expect: 0},
		{Key: "t/del", Delete: true, Expect: store.AnyRevision},
	})
	if err != nil {
		t.Fatal(err)
	}
	replay, err := s.Watch(ctx, "t/", start)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan store.Event{live, replay} {
		// Events of one Txn share its revision and come in op order.
		wantEvent(t, recv(t, ch), store.EventPut, "t/b", "b", rev)
		wantEvent(t, recv(t, ch), store.EventPut, "t/a", "a", rev)
		wantEvent(t, recv(t, ch), store.EventDelete, "t/del", "last", rev)
		noEvent(t, ch)
	}
}

func testWatchCancel(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	mustPut(t, s, "c/1", "x", 0)
	ch, err := s.Watch(ctx, "c/", 0)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, ch)
	cancel()
	waitClosed(t, ch)
	if err := store.WatchErr(ch); err != nil {
		t.Fatalf("WatchErr after cancel = %v, want nil", err)
	}
	// Cancel while still replaying (consumer never reads).
	for i := 0; i < 20; i++ {
		mustPut(t, s, "c/1", fmt.Sprint(i), store.AnyRevision)
	}
	ctx2, cancel2 := context.WithCancel(ctxT(t))
	ch2, err := s.Watch(ctx2, "c/", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	waitClosed(t, ch2)
	// The store still works and still notifies other watchers.
	ch3, err := s.Watch(ctxT(t), "c/", 21)
	if err != nil {
		t.Fatal(err)
	}
	r := mustPut(t, s, "c/2", "y", 0)
	wantEvent(t, recv(t, ch3), store.EventPut, "c/2", "y", r)
}

// testWatchConcurrentWriters checks that a watcher started while writers are
// running sees every revision after its start exactly once and in order,
// across the switch from replay to live. If the implementation drops the
// watcher for lagging, it re-watches from the last revision it received,
// which must lose nothing (that is the documented recovery).
func testWatchConcurrentWriters(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const writers, each = 4, 30
	for i := 0; i < 10; i++ {
		mustPut(t, s, "cw/seed", fmt.Sprint(i), store.AnyRevision)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			<-start
			for i := 0; i < each; i++ {
				if _, err := s.Put(ctx, fmt.Sprintf("cw/%d", w), []byte(fmt.Sprint(i)), store.AnyRevision); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
			}
		}(w)
	}
	go func() {
		wg.Wait()
		if _, err := s.Put(ctx, "cw/zz-done", nil, 0); err != nil {
			t.Errorf("Put: %v", err)
		}
	}()
	close(start)
	time.Sleep(time.Millisecond)
	next := int64(4)
	ch, err := s.Watch(ctx, "cw/", next-1)
	if err != nil {
		t.Fatal(err)
	}
	rewatches := 0
	for {
		var ev store.Event
		var ok bool
		select {
		case ev, ok = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for revision %d", next)
		}
		if !ok {
			if err := store.WatchErr(ch); !errors.Is(err, store.ErrWatcherLagged) || rewatches > 100 {
				t.Fatalf("watch closed (WatchErr %v) after %d re-watches", err, rewatches)
			}
			rewatches++
			if ch, err = s.Watch(ctx, "cw/", next-1); err != nil {
				t.Fatalf("re-watch from %d: %v", next-1, err)
			}
			continue
		}
		if ev.Revision != next {
			t.Fatalf("got revision %d, want %d (missed or repeated)", ev.Revision, next)
		}
		next++
		if ev.KV.Key == "cw/zz-done" {
			break
		}
	}
	if want := int64(10 + writers*each + 2); next != want {
		t.Fatalf("watch ended before revision %d, want %d", next, want)
	}
	noEvent(t, ch)
}

// testWatchSlowConsumer checks that a watcher nobody reads never blocks
// writers; the implementation may close it (WatchErr then reports
// ErrWatcherLagged), and what it did deliver is in order with no gaps.
func testWatchSlowConsumer(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	base, _ := s.Revision(ctx)
	ch, err := s.Watch(ctx, "", base)
	if err != nil {
		t.Fatal(err)
	}
	const txns, per = 30, 100 // 3000 events
	done := make(chan error, 1)
	go func() {
		for i := 0; i < txns; i++ {
			ops := make([]store.Op, per)
			for j := range ops {
				ops[j] = store.Op{Key: fmt.Sprintf("slow/%03d", j), Value: []byte(fmt.Sprint(i)), Expect: store.AnyRevision}
			}
			if _, err := s.Txn(ctx, ops); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("writers blocked by a watcher that is not read")
	}
	n, want := 0, base+1
	var lastKey string
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				if err := store.WatchErr(ch); !errors.Is(err, store.ErrWatcherLagged) {
					t.Fatalf("watch closed with WatchErr %v, want ErrWatcherLagged", err)
				}
				return
			}
			if ev.Revision < want || ev.Revision > want+1 || (ev.Revision == want && ev.KV.Key <= lastKey) {
				t.Fatalf("event %d: revision %d key %s out of order", n, ev.Revision, ev.KV.Key)
			}
			if ev.Revision == want+1 {
				if lastKey != fmt.Sprintf("slow/%03d", per-1) {
					t.Fatalf("revision %d incomplete: last key %s", want, lastKey)
				}
				want++
			}
			lastKey = ev.KV.Key
			n++
			if n == txns*per {
				return // kept up: everything delivered
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch stalled after %d events without closing", n)
		}
	}
}

func testClose(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "a", "1", 0)
	ch, err := s.Watch(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	recv(t, ch)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, ch)
	if err := store.WatchErr(ch); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("WatchErr after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Put(ctx, "b", []byte("1"), store.AnyRevision); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Watch(ctx, "", 0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Watch after Close = %v, want ErrClosed", err)
	}
}
