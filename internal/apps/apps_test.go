package apps

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Store: openStore(t), Org: "acme"})
	if _, err := s.Create(ctx, "Bad_Name", ""); !errors.Is(err, types.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	rec, err := s.Create(ctx, "web", "")
	if err != nil || rec.Network != "default" || rec.Org != "acme" {
		t.Fatalf("create: %+v %v", rec, err)
	}
	if _, err := s.Create(ctx, "web", ""); !errors.Is(err, types.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	if err := s.Ensure(ctx, "web"); err != nil {
		t.Fatalf("ensure existing: %v", err)
	}
	if err := s.Ensure(ctx, "db"); err != nil {
		t.Fatalf("ensure new: %v", err)
	}
	if all, err := s.List(ctx); err != nil || len(all) != 2 || all[0].Name != "db" {
		t.Fatalf("list: %+v %v", all, err)
	}
	if err := s.Delete(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "db"); !errors.Is(err, types.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if NameOf(Key("web")) != "web" || NameOf("apps/web/x") != "" || NameOf("machines/web") != "" {
		t.Fatal("NameOf")
	}
}

// TestDeletions: every subscriber hears of each deleted app, a sweep
// first, and slow subscribers hold no one up.
func TestDeletions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t)
	s := New(Options{Store: st, Org: "acme"})
	for _, a := range []string{"a", "b", "c"} {
		if err := s.Ensure(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	d := NewDeletions(st)
	go d.Run(ctx)
	type heard struct {
		mu  sync.Mutex
		got []string
	}
	var fast, slow heard
	listen := func(h *heard, pause time.Duration) func(context.Context, string) {
		return func(_ context.Context, app string) {
			time.Sleep(pause)
			h.mu.Lock()
			h.got = append(h.got, app)
			h.mu.Unlock()
		}
	}
	d.Subscribe(ctx, listen(&fast, 0))
	d.Subscribe(ctx, listen(&slow, 50*time.Millisecond))
	has := func(h *heard, want string) bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, a := range h.got {
			if a == want {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !has(&fast, "") || !has(&slow, "") {
		if time.Now().After(deadline) {
			t.Fatal("no first sweep")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Wait for the watch to be in place: a deletion from now on is heard
	// by name or by a sweep.
	for _, a := range []string{"a", "b"} {
		if err := s.Delete(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []*heard{&fast, &slow} {
		for !(has(h, "a") && has(h, "b")) {
			if time.Now().After(deadline) {
				h.mu.Lock()
				t.Fatalf("heard %q, want a and b", h.got)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if has(h, "c") {
			t.Fatal("heard of c, which was not deleted")
		}
	}
}

// TestAllocateFlycastConcurrently: apps allocating at once get distinct
// addresses.
func TestAllocateFlycastConcurrently(t *testing.T) {
	st := openStore(t)
	rng := netip.MustParsePrefix("fdaa:0:7::fc:0:0/96")
	const n = 16
	got := make([]types.IPAddress, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip, created, err := AllocateFlycast(context.Background(), st, rng, fmt.Sprintf("app%d", i), "default")
			if err != nil || !created {
				t.Errorf("app%d: %v (created %v)", i, err, created)
			}
			got[i] = ip
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range got {
		if seen[ip.Address] || !rng.Contains(netip.MustParseAddr(ip.Address)) {
			t.Fatalf("address %s given twice or outside %s: %+v", ip.Address, rng, got)
		}
		seen[ip.Address] = true
	}
	all, err := ListFlycast(context.Background(), st)
	if err != nil || len(all) != n {
		t.Fatalf("ListFlycast: %d, %v", len(all), err)
	}
	if err := ReleaseFlycast(context.Background(), st, "app3"); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseFlycast(context.Background(), st, "app3"); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if all, _ := ListFlycast(context.Background(), st); len(all) != n-1 {
		t.Fatalf("after release: %d addresses", len(all))
	}
	if FlycastAppOf("flycast/web") != "web" || FlycastAppOf("flycast/") != "" || FlycastAppOf("apps/web") != "" {
		t.Fatal("FlycastAppOf")
	}
}
