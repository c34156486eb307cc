package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/cluster"
	"github.com/hangar-dev/hangar/internal/store"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestClusterInitFromDataDir: a single-host data dir becomes the first
// member of a cluster; every key of state.db is in etcd, byte for byte;
// state.db is set aside; the daemon's next start (no cluster flag) opens
// the state from the cluster. A data dir whose daemon still runs is
// refused, and the refusal leaves no cluster behind.
func TestClusterInitFromDataDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 150 { // more than one etcd transaction's worth
		k, v := fmt.Sprintf("machines/app/m%03d", i), fmt.Sprintf(`{"id":"m%03d","state":"started"}`, i)
		if _, err := local.Put(ctx, k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	if _, err := local.Put(ctx, "apps/app", []byte{}, 0); err != nil {
		t.Fatal(err)
	}
	want["apps/app"] = ""
	o := Options{DataDir: dir, Region: "fra", Log: slog.New(slog.DiscardHandler), Cluster: &ClusterOptions{
		Name: "first", AdvertiseAddr: "127.0.0.1", ClusterListen: freeAddr(t), PeerListen: freeAddr(t), ClientListen: freeAddr(t)}}

	// The daemon still runs (holds state.db): refused, nothing left.
	_, err = ClusterInitFromDataDir(ctx, o)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "stop the daemon") {
		t.Fatalf("with the daemon running: %v", err)
	}
	if cluster.InCluster(dir) {
		t.Fatal("a refused init left a cluster dir")
	}
	local.Close()

	n, err := ClusterInitFromDataDir(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("copied %d keys, want %d", n, len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); !os.IsNotExist(err) {
		t.Fatalf("state.db still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, MigratedStateFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ClusterInitFromDataDir(ctx, o); err == nil || !strings.Contains(err.Error(), "already a cluster host") {
		t.Fatalf("a second init: %v", err)
	}

	// The daemon's start on the data dir, without cluster flags.
	o2 := Options{DataDir: dir, Log: slog.New(slog.DiscardHandler)}
	node, err := openCluster(ctx, &o2, false, o2.Log)
	if err != nil || node == nil {
		t.Fatalf("restart the member: %v %v", node, err)
	}
	defer node.Close()
	st, err := openState(ctx, o2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	kvs, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = string(kv.Value)
	}
	if len(got) != len(want) {
		t.Fatalf("%d keys in the cluster's state, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q in the cluster, %q in state.db", k, got[k], v)
		}
	}
	// A data dir in a cluster refuses an external etcd.
	o3 := Options{DataDir: dir, Etcd: &EtcdOptions{Endpoints: []string{"http://127.0.0.1:1"}}}
	if _, err := openCluster(ctx, &o3, false, slog.Default()); err == nil || !strings.Contains(err.Error(), "drop --etcd-endpoints") {
		t.Fatalf("--etcd-endpoints on a cluster data dir: %v", err)
	}
}
