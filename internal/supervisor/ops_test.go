package supervisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/types"
)

// storeOnly is a supervisor with a real store and nothing else: enough
// for the operations that only change records.
func storeOnly(t *testing.T) (*Supervisor, store.Store) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return New(Options{Store: st}), st
}

func putMachine(t *testing.T, st store.Store, app, id, state string) {
	t.Helper()
	r := &Record{Machine: types.Machine{ID: id, State: state, InstanceID: "01AAA", Config: &types.MachineConfig{Image: "x"}, UpdatedAt: now()}, App: app}
	if _, err := store.PutJSON(context.Background(), st, machineKey(app, id), r, 0); err != nil {
		t.Fatal(err)
	}
}

func TestLeases(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "m1", types.StateStarted)

	if err := s.CheckLease(ctx, "a", "m1", ""); err != nil {
		t.Fatalf("unleased machine: %v", err)
	}
	if _, err := s.GetLease(ctx, "a", "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLease without lease = %v, want ErrNotFound", err)
	}
	l, err := s.AcquireLease(ctx, "a", "m1", "alice", "deploy", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Nonce) != 32 || l.Owner != "alice" || l.Description != "deploy" || l.Version != "01AAA" {
		t.Fatalf("lease = %+v", l)
	}
	if d := time.Until(time.Unix(l.ExpiresAt, 0)); d < 8*time.Second || d > 11*time.Second {
		t.Fatalf("lease expires in %v, want ~10s", d)
	}
	if _, err := s.AcquireLease(ctx, "a", "m1", "bob", "", 0); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("second acquire = %v, want ErrConflict naming the holder", err)
	}
	for _, nonce := range []string{"", "wrong", l.Nonce[:31]} {
		if err := s.CheckLease(ctx, "a", "m1", nonce); !errors.Is(err, ErrConflict) {
			t.Fatalf("CheckLease(%q) = %v, want ErrConflict", nonce, err)
		}
		if err := s.ReleaseLease(ctx, "a", "m1", nonce); !errors.Is(err, ErrConflict) {
			t.Fatalf("ReleaseLease(%q) = %v, want ErrConflict", nonce, err)
		}
		if _, err := s.RefreshLease(ctx, "a", "m1", nonce, time.Minute); !errors.Is(err, ErrConflict) {
			t.Fatalf("RefreshLease(%q) = %v, want ErrConflict", nonce, err)
		}
	}
	if err := s.CheckLease(ctx, "a", "m1", l.Nonce); err != nil {
		t.Fatalf("holder's nonce: %v", err)
	}
	l2, err := s.RefreshLease(ctx, "a", "m1", l.Nonce, time.Hour)
	if err != nil || l2.Nonce != l.Nonce || l2.ExpiresAt < time.Now().Add(59*time.Minute).Unix() {
		t.Fatalf("refresh = %+v, %v", l2, err)
	}
	if _, err := s.AcquireLease(ctx, "a", "m1", "x", "", 2*MaxLeaseTTL); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ttl over max = %v, want ErrInvalid", err)
	}
	if err := s.ReleaseLease(ctx, "a", "m1", l.Nonce); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLease(ctx, "a", "m1", ""); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "a", "m1", "bob", "", 0); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}

	// An expired lease is no lease.
	if _, err := s.update(ctx, "a", "m1", func(r *Record) error { r.LeaseExpires = time.Now().Add(-time.Second).Unix(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckLease(ctx, "a", "m1", ""); err != nil {
		t.Fatalf("expired lease still enforced: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "a", "m1", "carol", "", 0); err != nil {
		t.Fatalf("acquire over an expired lease: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "a", "nope", "carol", "", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lease on a missing machine = %v", err)
	}
}

func TestMetadata(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "m1", types.StateStopped)
	if err := s.SetMetadata(ctx, "a", "m1", "role", "primary"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMetadata(ctx, "a", "m1", "bad key", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad key = %v", err)
	}
	if err := s.SetMetadata(ctx, "a", "m1", "big", strings.Repeat("x", MaxMetadataValue+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("big value = %v", err)
	}
	r, _ := s.Get(ctx, "a", "m1")
	if r.Config.Metadata["role"] != "primary" || r.InstanceID != "01AAA" {
		t.Fatalf("after set: %+v (instance %s)", r.Config.Metadata, r.InstanceID)
	}
	if err := s.DeleteMetadata(ctx, "a", "m1", "role"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMetadata(ctx, "a", "m1", "role"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete missing key = %v", err)
	}
	r, _ = s.Get(ctx, "a", "m1")
	if _, ok := r.Config.Metadata["role"]; ok {
		t.Fatal("key still there")
	}
}

func TestWaitForAndDestroyedRecords(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "m1", types.StateStarting)
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = s.setState(ctx, "a", "m1", types.StateStarted, "start", "user", nil)
	}()
	r, err := s.WaitFor(ctx, "a", "m1", 5*time.Second, func(r *Record) (bool, error) { return r != nil && r.State == types.StateStarted, nil })
	if err != nil || r.State != types.StateStarted {
		t.Fatalf("WaitFor = %v, %v", r, err)
	}
	start := time.Now()
	_, err = s.WaitFor(ctx, "a", "m1", 100*time.Millisecond, func(r *Record) (bool, error) { return r.State == types.StateStopped, nil })
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Fatalf("WaitFor timeout = %v after %v", err, time.Since(start))
	}

	r, _ = s.Get(ctx, "a", "m1")
	s.keepDestroyed(ctx, r)
	ds, err := s.ListDestroyed(ctx, "a")
	if err != nil || len(ds) != 1 || ds[0].State != types.StateDestroyed || ds[0].Events[0].Type != "destroy" {
		t.Fatalf("destroyed = %+v, %v", ds, err)
	}
	if err := s.ForgetDestroyed(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := s.ListDestroyed(ctx, "a"); len(ds) != 0 {
		t.Fatalf("after forget: %d", len(ds))
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "9": syscall.SIGKILL, " SIGUSR1 ": syscall.SIGUSR1} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SIGSTOP", "99", "-1", "SIGNOPE"} {
		if _, err := ParseSignal(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSignal(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestParseStatAndAddr(t *testing.T) {
	f, ok := parseStat("42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000000 300 18446744073709551615")
	if !ok || f.comm != "a (weird) name" || f.utime != 250 || f.stime != 50 || f.starttime != 12345 || f.rssPages != 300 {
		t.Fatalf("parseStat = %+v, %v", f, ok)
	}
	if _, ok := parseStat("42 (x) S 1"); ok {
		t.Fatal("short stat accepted")
	}
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000:0050":                         "0.0.0.0:80",
		"00000000000000000000000000000000:1F90": "[::]:8080",
		"000080FE00000000FF57A5FE3C8F2AFE:0016": "[fe80::fea5:57ff:fe2a:8f3c]:22",
	} {
		if got, ok := parseProcNetAddr(in); !ok || got != want {
			t.Errorf("parseProcNetAddr(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "zz:1", "0100007F", "0100007F:XYZ", "01007F:0050"} {
		if _, ok := parseProcNetAddr(in); ok {
			t.Errorf("parseProcNetAddr(%q) accepted", in)
		}
	}
}

// TestProcessesOfOwnNamespace lists the test's own PID namespace: the
// test process must be in it with its command line and working directory.
func TestProcessesOfOwnNamespace(t *testing.T) {
	ps, err := processesInNamespaceOf("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	found := false
	for _, p := range ps {
		if int(p.Pid) == os.Getpid() {
			found = true
			if !strings.Contains(p.Command, filepath.Base(os.Args[0])) || p.Directory != wd || p.RSS == 0 || p.Stime == 0 {
				t.Fatalf("own process = %+v (wd %s)", p, wd)
			}
		}
	}
	if !found {
		t.Fatalf("own pid %d not among %d processes", os.Getpid(), len(ps))
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000000 300 1")
	f.Add(")(")
	f.Fuzz(func(t *testing.T, s string) {
		if st, ok := parseStat(s); ok && strings.Count(s, "(") == 0 {
			t.Fatalf("accepted without a command: %+v", st)
		}
	})
}

func FuzzParseProcNetAddr(f *testing.F) {
	f.Add("0100007F:1F90")
	f.Add("00000000000000000000000000000000:1F90")
	f.Fuzz(func(t *testing.T, s string) {
		if a, ok := parseProcNetAddr(s); ok && !strings.Contains(a, ":") {
			t.Fatalf("%q -> %q", s, a)
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	f.Add("SIGTERM")
	f.Add("9")
	f.Fuzz(func(t *testing.T, s string) {
		if sig, err := ParseSignal(s); err == nil && (sig <= 0 || sig > 31) {
			t.Fatalf("%q -> %d", s, sig)
		}
	})
}

// TestGuardedOrdersWithLeases: a lease cannot slip in between the check
// and the change it guards, and a wrong nonce never runs the change.
func TestGuardedOrdersWithLeases(t *testing.T) {
	s, st := storeOnly(t)
	ctx := context.Background()
	putMachine(t, st, "a", "m1", types.StateStarted)
	running, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Guarded(ctx, "a", "m1", "", func() error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	acquired := make(chan error, 1)
	go func() {
		_, err := s.AcquireLease(ctx, "a", "m1", "bob", "", time.Minute)
		acquired <- err
	}()
	select {
	case err := <-acquired:
		t.Fatalf("lease acquired (%v) while a guarded change was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatalf("acquire after the change: %v", err)
	}
	called := false
	err := s.Guarded(ctx, "a", "m1", "wrong", func() error { called = true; return nil })
	if !errors.Is(err, ErrConflict) || called {
		t.Fatalf("Guarded with a wrong nonce = %v (called %v)", err, called)
	}
	if err := s.Guarded(ctx, "a", "missing", "", func() error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Guarded on a missing machine = %v", err)
	}
}
