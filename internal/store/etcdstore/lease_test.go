package etcdstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// TestLeasedKeyExpires checks the lease capability against a real etcd: a
// leased key lives while its writer renews it, goes at once on Release,
// and goes by itself once the writer stops renewing (here: its client is
// closed, as when a daemon dies), seen by another client of the store.
func TestLeasedKeyExpires(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	prefix := "/hangar/lease-test/"
	writer := openOn(t, eps, etcdstore.Options{Prefix: prefix})
	reader := openOn(t, eps, etcdstore.Options{Prefix: prefix})

	lk, err := writer.PutLeased(ctx, "alive/a", []byte("a"), time.Second)
	if err != nil {
		t.Fatalf("PutLeased: %v", err)
	}
	// Renewed: still there well past its ttl.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := reader.Get(ctx, "alive/a"); err != nil {
			t.Fatalf("leased key gone while its writer renews it: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := reader.Get(ctx, "alive/a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Release: %v, want not found", err)
	}
	select {
	case <-lk.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done did not close after Release")
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}

	// The writer dies: nobody renews, etcd deletes the key after the ttl.
	lk2, err := writer.PutLeased(ctx, "alive/b", []byte("b"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Get(ctx, "alive/b"); err != nil {
		t.Fatalf("leased key not written: %v", err)
	}
	writer.Close()
	<-lk2.Done()
	waitGone(t, reader, "alive/b")
	if _, err := writer.PutLeased(ctx, "alive/c", nil, time.Second); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("PutLeased on a closed store: %v, want ErrClosed", err)
	}
}

func waitGone(t *testing.T, s store.Store, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Get(context.Background(), key)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("leased key %s still there 30s after its writer stopped: %v", key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Update writes a new value under the key's lease: the key still goes
// with the lease.
func TestLeasedKeyUpdate(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	prefix := "/hangar/lease-update/"
	writer := openOn(t, eps, etcdstore.Options{Prefix: prefix})
	reader := openOn(t, eps, etcdstore.Options{Prefix: prefix})
	lk, err := writer.PutLeased(ctx, "edge/a", []byte("v1"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := lk.(store.LeasedUpdater)
	if !ok {
		t.Fatal("the etcd leased key is not a store.LeasedUpdater")
	}
	if err := u.Update(ctx, []byte("v2")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if kv, err := reader.Get(ctx, "edge/a"); err != nil || string(kv.Value) != "v2" {
		t.Fatalf("after Update: %q %v, want v2", kv.Value, err)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Get(ctx, "edge/a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Release of the updated key: %v, want not found (the update kept the lease)", err)
	}
	<-lk.Done()
	if err := u.Update(ctx, []byte("v3")); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update after the lease ended: %v, want ErrUnavailable", err)
	}
}
