package hosts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

func openEtcd(t *testing.T, eps []string) *etcdstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: eps}, etcdstore.Options{Prefix: "/hangar/hosts-test/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitState(t *testing.T, r *Registry, id, want string) types.Host {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := r.Get(context.Background(), id)
		if err == nil && h.State == want {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s: %+v, %v; want state %s", id, h, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two daemons' registries on one etcd: both hosts ready with their
// machines counted against them; a host whose daemon dies (its client
// closed, nobody renews) reads unreachable once its lease expires; one
// that shuts down cleanly reads unreachable at once.
func TestRegistryOnEtcd(t *testing.T) {
	eps := etcdtest.Start(t)
	stA, stB := openEtcd(t, eps), openEtcd(t, eps)
	ctx := context.Background()
	capacity := types.HostCapacity{CPUs: 2, MemoryMB: 2048}
	a := &Registry{Store: stA, TTL: time.Minute, Self: types.Host{ID: "a", Region: "fra", APIURL: "http://127.0.0.1:1", Capacity: capacity}}
	b := &Registry{Store: stB, TTL: time.Second, Self: types.Host{ID: "b", Region: "iad", APIURL: "http://127.0.0.1:2", Capacity: capacity}}
	actx, stopA := context.WithCancel(ctx)
	defer stopA()
	if err := a.Register(actx); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ key, json string }{
		{"machines/web/1", `{"id":"1","app":"web","state":"started","host_id":"b","config":{"guest":{"memory_mb":512}}}`},
		{"machines/web/2", `{"id":"2","app":"web","state":"stopped","host_id":"b"}`},
		{"machines/web/3", `{"id":"3","app":"web","state":"destroyed","host_id":"b"}`},
		{"machines/db/4", `{"id":"4","app":"db","state":"started","host_id":"a"}`},
	} {
		if _, err := stA.Put(ctx, m.key, []byte(m.json), 0); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := a.List(ctx)
	if err != nil || len(hs) != 2 {
		t.Fatalf("List = %+v, %v", hs, err)
	}
	if hs[0].ID != "a" || hs[0].State != types.HostReady || hs[0].Used.Machines != 1 || hs[0].Used.MemoryMB != 256 {
		t.Errorf("host a: %+v", hs[0])
	}
	if hs[1].ID != "b" || hs[1].State != types.HostReady || hs[1].Region != "iad" || hs[1].Used.Machines != 2 || hs[1].Used.MemoryMB != 512+256 {
		t.Errorf("host b: %+v (the destroyed machine must not count)", hs[1])
	}
	if _, err := a.Get(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown host: %v", err)
	}

	// b's daemon dies: its store client goes, nobody renews the lease.
	stB.Close()
	h := waitState(t, a, "b", types.HostUnreachable)
	if h.APIURL != "http://127.0.0.1:2" || h.Used.Machines != 2 {
		t.Errorf("an unreachable host keeps its record: %+v", h)
	}
	if got := waitState(t, a, "a", types.HostReady); got.Region != "fra" {
		t.Errorf("host a: %+v", got)
	}
	// a shuts down cleanly: unreachable without waiting for its TTL (a
	// minute, longer than waitState waits).
	stopA()
	waitState(t, &Registry{Store: openEtcd(t, eps)}, "a", types.HostUnreachable)

	// a restarts: ready again with the same record.
	a2 := &Registry{Store: openEtcd(t, eps), TTL: time.Second, Self: a.Self}
	if err := a2.Register(ctx); err != nil {
		t.Fatal(err)
	}
	waitState(t, a2, "a", types.HostReady)
}

// On the embedded store the single host is always ready.
func TestRegistryOnBolt(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &Registry{Store: st, Self: types.Host{ID: "solo", Region: "local"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	// A record of before host ids counts against this host.
	if _, err := st.Put(ctx, "machines/web/1", []byte(`{"id":"1","app":"web","state":"started"}`), 0); err != nil {
		t.Fatal(err)
	}
	hs, err := r.List(ctx)
	if err != nil || len(hs) != 1 || hs[0].State != types.HostReady || hs[0].Used.Machines != 1 {
		t.Fatalf("List = %+v, %v", hs, err)
	}
}

func TestLoadOrCreateID(t *testing.T) {
	dir := t.TempDir()
	id, err := LoadOrCreateID(dir, "", "")
	if err != nil || !idRE.MatchString(id) {
		t.Fatalf("new id %q, %v", id, err)
	}
	again, err := LoadOrCreateID(dir, "", "")
	if err != nil || again != id {
		t.Fatalf("kept id %q, %v; want %q", again, err, id)
	}
	if same, err := LoadOrCreateID(dir, id, ""); err != nil || same != id {
		t.Fatalf("given the kept id: %q, %v", same, err)
	}
	_, err = LoadOrCreateID(dir, "other", "")
	if !errors.Is(err, types.ErrInvalid) || !strings.Contains(err.Error(), "belongs to host "+id) {
		t.Fatalf("another id for the data dir: %v", err)
	}
	dir2 := t.TempDir()
	if _, err := LoadOrCreateID(dir2, "Bad Id", ""); !errors.Is(err, types.ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	if id, err := LoadOrCreateID(dir2, "fra-1", ""); err != nil || id != "fra-1" {
		t.Fatalf("given id: %q, %v", id, err)
	}
	// A cluster member's name, when it makes a valid id, and only for a
	// data dir with none yet.
	if id, err := LoadOrCreateID(t.TempDir(), "", "fra-host"); err != nil || id != "fra-host" {
		t.Fatalf("member name fallback: %q, %v", id, err)
	}
	if id, err := LoadOrCreateID(t.TempDir(), "", "Not.Valid"); err != nil || !strings.HasPrefix(id, "h") {
		t.Fatalf("an invalid member name: %q, %v; want a new id", id, err)
	}
	if id, err := LoadOrCreateID(dir2, "", "other"); err != nil || id != "fra-1" {
		t.Fatalf("kept id over the member name: %q, %v", id, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir2, IDFile))
	if strings.TrimSpace(string(b)) != "fra-1" {
		t.Fatalf("kept %q", b)
	}
}

func TestDetectCapacity(t *testing.T) {
	c := DetectCapacity(t.TempDir())
	if c.CPUs < 1 || c.MemoryMB < 1 || c.DiskMB < 1 {
		t.Fatalf("capacity %+v: every figure should be read on Linux", c)
	}
}

// TestRegistryHandOver: across a reload the host stays ready: the old
// daemon leaves its alive mark (HandOver), the new one writes it on a lease
// of its own, and the old lease's expiry does not take the key with it.
func TestRegistryHandOver(t *testing.T) {
	eps := etcdtest.Start(t)
	ctx := context.Background()
	self := types.Host{ID: "a", Region: "fra"}
	old := &Registry{Store: openEtcd(t, eps), TTL: time.Second, Self: self}
	octx, stop := context.WithCancel(ctx)
	if err := old.Register(octx); err != nil {
		t.Fatal(err)
	}
	old.HandOver()
	stop()
	<-old.stopped
	// Between the old daemon and the new one, the host is still ready.
	if h, err := (&Registry{Store: openEtcd(t, eps)}).Get(ctx, "a"); err != nil || h.State != types.HostReady {
		t.Fatalf("host a between two daemons of a reload: %+v, %v; want ready", h, err)
	}
	next := &Registry{Store: openEtcd(t, eps), TTL: time.Minute, Self: self}
	if err := next.Register(ctx); err != nil {
		t.Fatal(err)
	}
	old.Store.Close() // the old daemon exits: its lease is no longer renewed
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// Wait for the old lease to expire: one lease left, the new one's.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ls, err := cli.Leases(ctx)
		if err == nil && len(ls.Leases) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old daemon's lease did not expire: %+v, %v", ls, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if h, err := next.Get(ctx, "a"); err != nil || h.State != types.HostReady {
		t.Fatalf("host a after a reload: %+v, %v; want ready", h, err)
	}
}
