package hosts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/types"
)

// Removing a host on a real etcd: refused for the asking host, a ready
// host, and (without force) one that still has machines not replaced
// elsewhere or volumes; with force everything of the host is forgotten
// and nothing of another host's; a daemon with the removed host's old
// data dir refuses to start, a fresh one clears the tombstone.
func TestRemoveHost(t *testing.T) {
	eps := etcdtest.Start(t)
	stA, stB, stC := openEtcd(t, eps), openEtcd(t, eps), openEtcd(t, eps)
	ctx := context.Background()
	capacity := types.HostCapacity{CPUs: 2, MemoryMB: 2048}
	a := &Registry{Store: stA, TTL: time.Minute, Self: types.Host{ID: "a", Region: "fra", Capacity: capacity}}
	b := &Registry{Store: stB, TTL: time.Minute, Self: types.Host{ID: "b", Region: "fra", Capacity: capacity}}
	c := &Registry{Store: stC, TTL: time.Second, Self: types.Host{ID: "c", Region: "iad", Capacity: capacity}}
	for _, r := range []*Registry{a, b, c} {
		if err := r.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	put := func(key, value string) {
		t.Helper()
		if _, err := stA.Put(ctx, key, []byte(value), store.AnyRevision); err != nil {
			t.Fatal(err)
		}
	}
	put("machines/web/1", `{"id":"1","app":"web","state":"destroying","host_id":"c","replaced_by":"5"}`)
	put("machines/web/5", `{"id":"5","app":"web","state":"started","host_id":"a"}`)
	put("machines/db/2", `{"id":"2","app":"db","state":"started","host_id":"c"}`)
	put("machines/db/3", `{"id":"3","app":"db","state":"started","host_id":"b"}`)
	put("volumes/db/vol_c", `{"id":"vol_c","name":"data","host_id":"c"}`)
	put("volumes/db/vol_b", `{"id":"vol_b","name":"data","host_id":"b"}`)
	put("hosts-rtt/a/c", `{}`)
	put("hosts-rtt/c/a", `{}`)
	put("hosts-rtt/a/b", `{}`)
	var released []string
	var members []string
	rm := &Remover{Registry: a,
		ReleaseSubnet: func(_ context.Context, h string) error { released = append(released, h); return nil },
		RemoveMember:  func(_ context.Context, h types.Host) (bool, error) { members = append(members, h.ID); return true, nil }}

	if _, err := rm.Remove(ctx, "a", true); !errors.Is(err, types.ErrInvalid) || !strings.Contains(err.Error(), "another host") {
		t.Errorf("removing the asking host: %v", err)
	}
	if _, err := rm.Remove(ctx, "zz", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing an unknown host: %v", err)
	}
	if _, err := rm.Remove(ctx, "b", true); !errors.Is(err, types.ErrConflict) || !strings.Contains(err.Error(), "is ready") {
		t.Errorf("removing a ready host: %v", err)
	}

	stC.Close() // c's daemon dies
	waitState(t, a, "c", types.HostUnreachable)
	_, err := rm.Remove(ctx, "c", false)
	if !errors.Is(err, types.ErrConflict) || !strings.Contains(err.Error(), "db/2") || !strings.Contains(err.Error(), "db/vol_c") || strings.Contains(err.Error(), "web/1") {
		t.Fatalf("removing c without force: %v; want a conflict naming db/2 and db/vol_c only", err)
	}
	if _, err := stA.Get(ctx, removedPrefix+"c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused removal left a tombstone: %v", err)
	}
	if len(released)+len(members) != 0 {
		t.Errorf("a refused removal ran its hooks: %v %v", released, members)
	}

	res, err := rm.Remove(ctx, "c", true)
	if err != nil {
		t.Fatal(err)
	}
	want := types.HostRemoval{Host: "c", Machines: []string{"db/2", "web/1"}, Volumes: []string{"db/vol_c"}, ClusterMember: true}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Remove = %+v, want %+v", res, want)
	}
	for _, k := range []string{"machines/web/1", "machines/db/2", "volumes/db/vol_c", "hosts/c", "hosts-rtt/a/c", "hosts-rtt/c/a"} {
		if _, err := stA.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s is still there (%v)", k, err)
		}
	}
	for _, k := range []string{"machines/web/5", "machines/db/3", "volumes/db/vol_b", "hosts/a", "hosts/b", "hosts-rtt/a/b"} {
		if _, err := stA.Get(ctx, k); err != nil {
			t.Errorf("%s of another host went: %v", k, err)
		}
	}
	if !reflect.DeepEqual(released, []string{"c"}) || !reflect.DeepEqual(members, []string{"c"}) {
		t.Errorf("hooks: subnet %v, member %v", released, members)
	}
	if hs, _ := a.List(ctx); len(hs) != 2 {
		t.Errorf("hosts after the removal: %+v", hs)
	}
	if _, err := rm.Remove(ctx, "c", true); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing it again: %v", err)
	}

	// c's old data dir comes back: refused. A fresh one (its host id made
	// after the removal) clears the tombstone.
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, IDFile), []byte("c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(old, IDFile), past, past); err != nil {
		t.Fatal(err)
	}
	if err := CheckNotRemoved(ctx, stA, old, "c"); !errors.Is(err, ErrHostRemoved) || !strings.Contains(err.Error(), "Empty the data dir") {
		t.Errorf("the removed host's old data dir: %v", err)
	}
	fresh := t.TempDir()
	if _, err := LoadOrCreateID(fresh, "", "c"); err != nil {
		t.Fatal(err)
	}
	if err := CheckNotRemoved(ctx, stA, fresh, "c"); err != nil {
		t.Errorf("a fresh data dir: %v", err)
	}
	if _, err := stA.Get(ctx, removedPrefix+"c"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the tombstone outlived a fresh join: %v", err)
	}
	if err := CheckNotRemoved(ctx, stA, old, "c"); err != nil {
		t.Errorf("without a tombstone: %v", err)
	}
}
