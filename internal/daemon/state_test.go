package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// TestOpenStateEtcd checks --etcd-endpoints' state: it is the etcd store,
// one daemon at a time holds it (a second one gives up with ErrLocked, as
// with state.db), and closing it lets the next daemon in at once.
func TestOpenStateEtcd(t *testing.T) {
	ctx := context.Background()
	o := Options{DataDir: t.TempDir(), Etcd: &EtcdOptions{Endpoints: etcdtest.Start(t), Prefix: "/hangar/daemon-test/"}}
	st, err := openState(ctx, o, 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.lost == nil {
		t.Fatal("etcd state without a lock")
	}
	rev, err := st.Put(ctx, "apps/a", []byte("{}"), 0)
	if err != nil || rev <= 0 {
		t.Fatalf("Put = %d, %v", rev, err)
	}
	if _, err := openState(ctx, o, 300*time.Millisecond); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second daemon on the same namespace: %v, want ErrLocked", err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	st2, err := openState(ctx, o, time.Second)
	if err != nil {
		t.Fatalf("open after the first daemon closed: %v", err)
	}
	defer st2.close()
	if kv, err := st2.Get(ctx, "apps/a"); err != nil || kv.ModRevision != rev {
		t.Fatalf("state after reopen: %+v, %v", kv, err)
	}
	select {
	case <-st.lost:
	default:
		t.Fatal("a closed state's lock is not reported lost")
	}
}

// TestOpenStateFile checks that without --etcd-endpoints the state is the
// file, as before.
func TestOpenStateFile(t *testing.T) {
	o := Options{DataDir: t.TempDir()}
	st, err := openState(context.Background(), o, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if _, ok := st.Store.(*store.Local); !ok || st.lost != nil {
		t.Fatalf("state = %T (lost %v), want the state file", st.Store, st.lost)
	}
	if o.stateName() != o.DataDir+"/state.db" {
		t.Fatalf("stateName = %s", o.stateName())
	}
}

// TestStateKindIsTheDataDirs checks that a data dir stays with its state:
// one with state.db refuses etcd, one used with etcd refuses state.db and
// another etcd namespace.
func TestStateKindIsTheDataDirs(t *testing.T) {
	ctx := context.Background()
	eps := etcdtest.Start(t)
	fileDir := t.TempDir()
	st, err := openState(ctx, Options{DataDir: fileDir}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	_, err = openState(ctx, Options{DataDir: fileDir, Etcd: &EtcdOptions{Endpoints: eps}}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "single-host state") {
		t.Fatalf("etcd on a data dir with state.db: %v", err)
	}

	etcdDir := t.TempDir()
	o := Options{DataDir: etcdDir, Etcd: &EtcdOptions{Endpoints: eps, Prefix: "/hangar/one/"}}
	st, err = openState(ctx, o, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if _, err := openState(ctx, Options{DataDir: etcdDir}, 0); err == nil || !strings.Contains(err.Error(), "--etcd-endpoints") {
		t.Fatalf("state.db on a data dir used with etcd: %v", err)
	}
	if _, err := os.Stat(filepath.Join(etcdDir, "state.db")); !os.IsNotExist(err) {
		t.Fatalf("state.db created on a data dir used with etcd (%v)", err)
	}
	o2 := Options{DataDir: etcdDir, Etcd: &EtcdOptions{Endpoints: eps, Prefix: "/hangar/two/"}}
	if _, err := openState(ctx, o2, time.Second); err == nil || !strings.Contains(err.Error(), "/hangar/one/") {
		t.Fatalf("another namespace on the data dir: %v", err)
	}
	st, err = openState(ctx, o, time.Second)
	if err != nil {
		t.Fatalf("same namespace again: %v", err)
	}
	st.close()
}

// TestOpenStateEtcdPerHost: daemons of different hosts share one
// namespace (each the authority for its own machines); a second daemon of
// the same host is refused, as before.
func TestOpenStateEtcdPerHost(t *testing.T) {
	ctx := context.Background()
	eps := etcdtest.Start(t)
	open := func(host string, wait time.Duration) (*state, error) {
		return openState(ctx, Options{DataDir: t.TempDir(), HostID: host, Etcd: &EtcdOptions{Endpoints: eps, Prefix: "/hangar/per-host/"}}, wait)
	}
	a, err := open("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	b, err := open("b", 0)
	if err != nil {
		t.Fatalf("a second host on the namespace: %v", err)
	}
	defer b.close()
	if _, err := open("a", 300*time.Millisecond); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("a second daemon of host a: %v, want ErrLocked", err)
	}
}
