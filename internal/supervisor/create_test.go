package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/runtime/runtimetest"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

type testImages struct{ dir string }

func (i testImages) Get(_ context.Context, ref string) (*image.Image, error) {
	return &image.Image{Ref: ref, Digest: fmt.Sprintf("sha256:%064x", len(ref)), RootFS: i.dir, Config: image.Config{Cmd: []string{"serve"}}}, nil
}

// TestCreateUniqueNameAndLease: the Machines API's create refuses a name
// the app's machines have, and leases the machine before it starts.
func TestCreateUniqueNameAndLease(t *testing.T) {
	opts, drv := fakeOptions(t)
	s := New(opts)
	defer s.Shutdown()
	t.Cleanup(func() {
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	ctx := context.Background()
	cfg := &types.MachineConfig{Image: "app:v1"}

	m, err := s.Create(ctx, "a", cfg, CreateOptions{Name: "db", UniqueName: true, LeaseTTL: time.Minute, LeaseOwner: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != types.StateStarted {
		t.Errorf("created: %s, want started", m.State)
	}
	if l, err := s.GetLease(ctx, "a", m.ID); err != nil || l.Owner != "alice" {
		t.Errorf("lease: %+v, %v; want alice's", l, err)
	}
	if _, err := s.Create(ctx, "a", cfg, CreateOptions{Name: "db", UniqueName: true, SkipLaunch: true}); !errors.Is(err, ErrConflict) {
		t.Errorf("a second machine named db: %v, want ErrConflict", err)
	}
	if ms, _ := s.List(ctx, "a"); len(ms) != 1 {
		t.Errorf("%d machines after the refused create, want 1", len(ms))
	}
	// Without UniqueName (a deploy), names may repeat; elsewhere too.
	if _, err := s.Create(ctx, "a", cfg, CreateOptions{Name: "db", SkipLaunch: true}); err != nil {
		t.Errorf("a repeated name without UniqueName: %v", err)
	}
	if _, err := s.Create(ctx, "b", cfg, CreateOptions{Name: "db", UniqueName: true, SkipLaunch: true}); err != nil {
		t.Errorf("the same name in another app: %v", err)
	}
}

// TestAutoDestroyAfterExit: a machine with auto_destroy that exits and
// will not restart is destroyed; one without it stays stopped.
func TestAutoDestroyAfterExit(t *testing.T) {
	opts, drv := fakeOptions(t)
	s := New(opts)
	defer s.Shutdown()
	t.Cleanup(func() {
		for _, id := range drv.Running() {
			_ = drv.Destroy(context.Background(), id)
		}
	})
	ctx := context.Background()
	no := &types.MachineRestart{Policy: types.RestartNo}
	gone, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1", AutoDestroy: true, Restart: no}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1", Restart: no}, CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{gone.ID, kept.ID} {
		if err := drv.Crash(id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := s.WaitState(ctx, "a", gone.ID, []string{types.StateDestroyed}, "", 5*time.Second); err != nil || st != types.StateDestroyed {
		t.Fatalf("auto_destroy machine after its exit: %q, %v", st, err)
	}
	if st, err := s.WaitState(ctx, "a", kept.ID, []string{types.StateStopped}, "", 5*time.Second); err != nil || st != types.StateStopped {
		t.Fatalf("machine without auto_destroy after its exit: %q, %v", st, err)
	}
}

// fakeOptions are a supervisor's options over a real store in a temp dir
// and the in-memory driver and network (runtimetest), with a router.
func fakeOptions(t *testing.T) (Options, *runtimetest.Driver) {
	t.Helper()
	dataDir := t.TempDir()
	st, err := store.Open(filepath.Join(dataDir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	net := runtimetest.NewNetwork()
	drv := runtimetest.New(net)
	return Options{Store: st, Driver: drv, Network: net, Router: &fakeRouter{}, Images: testImages{dir: dataDir}, Region: "tst", DataDir: dataDir,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, drv
}

// TestConcurrentCreatesGetDistinctAddresses: many creates at once on one
// host all succeed (no "too much contention" conflict), each with its own
// address.
func TestConcurrentCreatesGetDistinctAddresses(t *testing.T) {
	opts, _ := fakeOptions(t)
	s := New(opts)
	defer s.Shutdown()
	ctx := context.Background()
	const n = 120
	errs := make(chan error, n)
	recs := make(chan *Record, n)
	for i := 0; i < n; i++ {
		go func() {
			r, err := s.Create(ctx, "a", &types.MachineConfig{Image: "app:v1"}, CreateOptions{SkipLaunch: true})
			errs <- err
			recs <- r
		}()
	}
	seen := map[int]string{}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		r := <-recs
		if other, dup := seen[r.AddrIndex]; dup {
			t.Fatalf("machines %s and %s share address index %d", other, r.ID, r.AddrIndex)
		}
		seen[r.AddrIndex] = r.ID
	}
}

// TestAddressesArePerHost: hosts sharing one store allocate address
// indexes each in their own space (an index is an offset in the host's
// subnet), an index recorded without a host stays taken on every host,
// and destroying a machine frees only its own host's index.
func TestAddressesArePerHost(t *testing.T) {
	optsA, _ := fakeOptions(t)
	optsB, _ := fakeOptions(t)
	optsB.Store = optsA.Store
	optsA.HostID, optsB.HostID = "host-a", "host-b"
	ctx := context.Background()
	// A single host's allocation from before host ids.
	if _, err := optsA.Store.Put(ctx, "ipam/00000002", []byte("m-old"), 0); err != nil {
		t.Fatal(err)
	}
	a, b := New(optsA), New(optsB)
	defer a.Shutdown()
	defer b.Shutdown()
	cfg := &types.MachineConfig{Image: "app:v1"}
	ma, err := a.Create(ctx, "app", cfg, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.Create(ctx, "app", cfg, CreateOptions{SkipLaunch: true})
	if err != nil {
		t.Fatal(err)
	}
	if ma.AddrIndex != 3 || mb.AddrIndex != 3 {
		t.Fatalf("indexes a=%d b=%d; want 3 on each host (2 is the old allocation)", ma.AddrIndex, mb.AddrIndex)
	}
	if err := a.Destroy(ctx, "app", ma.ID, true); err != nil {
		t.Fatal(err)
	}
	kvs, _ := optsA.Store.List(ctx, "ipam/")
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, kv.Key+"="+string(kv.Value))
	}
	want := []string{"ipam/00000002=m-old", "ipam/host-b/00000003=" + mb.ID}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("allocations after destroying a's machine: %v, want %v", keys, want)
	}
}
