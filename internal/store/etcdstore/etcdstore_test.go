package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/store/storetest"
)

var namespaces atomic.Int64

// openOn opens a store in a fresh namespace of the etcd at endpoints.
func openOn(t testing.TB, endpoints []string, opts etcdstore.Options) *etcdstore.Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("/hangar/test-%d/", namespaces.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: endpoints}, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// One etcd serves the whole suite: every store is a fresh namespace in it,
// which starts at revision 0 like a new bbolt file. The subtests run one at
// a time, so nothing else moves etcd's revision under the suite's feet.
func TestConformance(t *testing.T) {
	eps := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openOn(t, eps, etcdstore.Options{}) })
}

// A tiny watch buffer exercises the lag path of the same suite.
func TestConformanceSmallBuffer(t *testing.T) {
	eps := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openOn(t, eps, etcdstore.Options{WatchBuffer: 4})
	})
}

// TestNamespaces checks that stores under different prefixes of one etcd do
// not see each other, that a reopened namespace keeps its revisions (the
// base is stored in etcd, not in the process), and that a prefix whose
// marker holds something else is refused.
func TestNamespaces(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	a := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/a/"})
	ra, err := a.Put(ctx, "apps/x", []byte("a"), 0)
	if err != nil || ra != 1 {
		t.Fatalf("first Put in a = %d, %v; want revision 1", ra, err)
	}
	b := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/b/"})
	if _, err := b.Get(ctx, "apps/x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b sees a's key: %v", err)
	}
	rb, err := b.Put(ctx, "apps/x", []byte("b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if kvs, err := a.List(ctx, ""); err != nil || len(kvs) != 1 || string(kvs[0].Value) != "a" {
		t.Fatalf("a lists %+v, %v; want only its own key", kvs, err)
	}
	// Another store's writes move the shared etcd revision.
	if rev, _ := a.Revision(ctx); rev < rb {
		t.Fatalf("a's revision %d below b's write %d", rev, rb)
	}
	a.Close()
	a2 := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/a/"})
	kv, err := a2.Get(ctx, "apps/x")
	if err != nil || kv.ModRevision != ra || kv.CreateRevision != ra {
		t.Fatalf("reopened a: %+v, %v; want revisions %d", kv, err, ra)
	}
	if _, err := a2.Put(ctx, "apps/x", []byte("a2"), ra); err != nil {
		t.Fatalf("CAS with a revision from before the reopen: %v", err)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, "/other/meta", "not hangar"); err != nil {
		t.Fatal(err)
	}
	if _, err := etcdstore.New(ctx, cli, etcdstore.Options{Prefix: "/other/"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("New on a foreign prefix: %v, want ErrInvalid", err)
	}
}

// TestWatchCompacted compacts etcd's history and checks the mapping: etcd
// keeps revisions from its compaction revision C on, so a watch after store
// revision C-base-1 or later replays, and one from earlier fails with
// ErrCompacted.
func TestWatchCompacted(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	s := openOn(t, eps, etcdstore.Options{})
	for i := range 10 {
		if _, err := s.Put(ctx, "k", []byte(fmt.Sprint(i)), store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, s.Prefix()+"kv/k")
	if err != nil {
		t.Fatal(err)
	}
	base := resp.Kvs[0].ModRevision - 10 // k's last write is store revision 10
	if _, err := cli.Compact(ctx, base+6); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(ctx, "", 4); !errors.Is(err, store.ErrCompacted) {
		t.Fatalf("Watch from 4 after compaction at 6: %v, want ErrCompacted", err)
	}
	ch, err := s.Watch(ctx, "", 5)
	if err != nil {
		t.Fatalf("Watch from 5: %v", err)
	}
	for want := int64(6); want <= 10; want++ {
		select {
		case ev := <-ch:
			if ev.Revision != want || string(ev.KV.Value) != fmt.Sprint(want-1) {
				t.Fatalf("event %+v, want revision %d", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d", want)
		}
	}
}

// TestUnreachable checks that a store whose etcd does not answer fails
// within its request timeout with ErrUnavailable.
func TestUnreachable(t *testing.T) {
	c := etcdtest.StartCluster(t, 1)
	eps := c.Endpoints()
	s := openOn(t, eps, etcdstore.Options{RequestTimeout: 500 * time.Millisecond})
	c.Members[0].Stop()
	t0 := time.Now()
	_, err := s.Put(context.Background(), "k", []byte("v"), store.AnyRevision)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Put with etcd down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("Put with etcd down took %s", d)
	}
	_, err = etcdstore.Open(context.Background(), clientv3.Config{Endpoints: eps}, etcdstore.Options{RequestTimeout: 500 * time.Millisecond})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open with etcd down: %v, want ErrUnavailable", err)
	}
	t.Log(err)
}

// TestWatchReplayWaits checks that, as in the embedded store, a watcher
// replaying history waits for a slow consumer instead of being closed for
// lagging, even with a tiny buffer.
func TestWatchReplayWaits(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	s := openOn(t, eps, etcdstore.Options{WatchBuffer: 2})
	for i := range 20 {
		ops := make([]store.Op, 10)
		for j := range ops {
			ops[j] = store.Op{Key: fmt.Sprintf("r/%d", j), Value: []byte(fmt.Sprint(i)), Expect: store.AnyRevision}
		}
		if _, err := s.Txn(ctx, ops); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := s.Watch(ctx, "r/", 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let etcd deliver the history
	for n := range 200 {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("replaying watcher closed after %d events: %v", n, store.WatchErr(ch))
			}
			if want := int64(n/10 + 1); ev.Revision != want {
				t.Fatalf("event %d at revision %d, want %d", n, ev.Revision, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d", n)
		}
	}
}

// TestTLS opens the store on a member that requires mutual TLS, and checks
// that a client without a certificate is refused.
func TestTLS(t *testing.T) {
	m := etcdtest.StartTLS(t)
	tlsCfg, err := etcdstore.ClientTLS(m.CAFile, m.CertFile, m.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: m.Endpoints, TLS: tlsCfg}, etcdstore.Options{})
	if err != nil {
		t.Fatalf("Open over mutual TLS: %v", err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	noCert, err := etcdstore.ClientTLS(m.CAFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = etcdstore.Open(ctx, clientv3.Config{Endpoints: m.Endpoints, TLS: noCert}, etcdstore.Options{RequestTimeout: time.Second})
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "client certificate") {
		t.Fatalf("Open without a client certificate: %v, want ErrUnavailable with a TLS hint", err)
	}
	t.Log(err)

	if _, err := etcdstore.ClientTLS(m.CAFile, m.CertFile, ""); err == nil {
		t.Fatal("ClientTLS with a certificate but no key succeeded")
	}
	if _, err := etcdstore.ClientTLS(m.CertFile+".missing", "", ""); err == nil {
		t.Fatal("ClientTLS with a missing CA file succeeded")
	}
}

// TestLock checks the owner lock: a second holder waits and gives up with
// ErrLocked, gets it at once after Unlock, and after the holder's lease
// expires when the holder is gone without unlocking.
func TestLock(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	a := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/lock/"})
	b := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/lock/"})
	la, err := a.Lock(ctx, "daemon", time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "daemon", 200*time.Millisecond, 0); !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "another hangar daemon") {
		t.Fatalf("second Lock: %v, want ErrLocked with a hint", err)
	}
	got := make(chan error, 1)
	go func() {
		lb, err := b.Lock(ctx, "daemon", 30*time.Second, time.Second)
		if err == nil {
			defer lb.Unlock(ctx)
		}
		got <- err
	}()
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}

	// A holder that vanishes without unlocking frees the lock after its ttl.
	c := openOn(t, eps, etcdstore.Options{Prefix: "/hangar/lock/"})
	lc, err := c.Lock(ctx, "other", time.Second, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // stops renewing the lease
	select {
	case <-lc.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("lock's Done did not close after its store closed")
	}
	t0 := time.Now()
	if _, err := b.Lock(ctx, "other", 30*time.Second, 0); err != nil {
		t.Fatalf("Lock after the holder's lease expired: %v", err)
	}
	t.Logf("lock taken over %s after its holder vanished", time.Since(t0).Round(time.Millisecond))
}
