package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
)

// TestLocalLeasedKey: on the embedded store a leased key stays until it is
// released (one file, one writer: the host is never unreachable to
// itself), Release deletes it, and Done closes with the store.
func TestLocalLeasedKey(t *testing.T) {
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var _ store.Leaser = s
	ctx := context.Background()
	if _, err := s.PutLeased(ctx, "k", nil, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("ttl 0: %v, want ErrInvalid", err)
	}
	lk, err := s.PutLeased(ctx, "alive/a", []byte("a"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if kv, err := s.Get(ctx, "alive/a"); err != nil || string(kv.Value) != "a" {
		t.Fatalf("Get = %q, %v", kv.Value, err)
	}
	if err := lk.(store.LeasedUpdater).Update(ctx, []byte("a2")); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if kv, err := s.Get(ctx, "alive/a"); err != nil || string(kv.Value) != "a2" {
		t.Fatalf("after Update: Get = %q, %v", kv.Value, err)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "alive/a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Release: %v, want not found", err)
	}
	if err := lk.Release(ctx); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	lk2, err := s.PutLeased(ctx, "alive/b", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lk2.Done():
		t.Fatal("Done closed while the store is open")
	default:
	}
	s.Close()
	<-lk2.Done()
}
