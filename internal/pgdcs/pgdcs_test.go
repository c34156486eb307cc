package pgdcs

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func userClient(t *testing.T, g Grant, password string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: g.Endpoints, Username: g.Username, Password: password, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A cluster's user reads and writes its own prefix only; the member keeps
// its address, users and data across a restart; Forget removes the
// cluster's keys and user.
func TestGrantIsolatesClusters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := &Server{DataDir: dir, Host: "127.0.0.1"}
	t.Cleanup(s.Close)
	if s.Exists() {
		t.Fatal("a store exists before the first grant")
	}
	ga, pa, err := s.Grant(ctx, "db-a")
	if err != nil {
		t.Fatal(err)
	}
	gb, pb, err := s.Grant(ctx, "db-b")
	if err != nil {
		t.Fatal(err)
	}
	if ga.Username == gb.Username || pa == pb || ga.Namespace != Namespace || ga.Scope != "db-a" {
		t.Fatalf("grants %+v %+v", ga, gb)
	}
	a := userClient(t, ga, pa)
	if _, err := a.Put(ctx, Prefix("db-a")+"leader", "m1"); err != nil {
		t.Fatalf("write own prefix: %v", err)
	}
	if _, err := a.Put(ctx, Prefix("db-b")+"leader", "m1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("write another cluster's prefix: %v, want permission denied", err)
	}
	if _, err := a.Get(ctx, Prefix("db-b"), clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Fatalf("read another cluster's prefix: %v, want permission denied", err)
	}
	if _, err := clientv3.New(clientv3.Config{Endpoints: ga.Endpoints, Username: ga.Username, Password: pb, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	// A second grant renews the password: the old one stops working.
	_, pa2, err := s.Grant(ctx, "db-a")
	if err != nil || pa2 == pa {
		t.Fatalf("renew: %v", err)
	}

	s.Close()
	s2 := &Server{DataDir: dir, Host: "127.0.0.1"}
	t.Cleanup(s2.Close)
	if !s2.Exists() {
		t.Fatal("the store is not found after a restart")
	}
	if err := s2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a2 := userClient(t, ga, pa2)
	r, err := a2.Get(ctx, Prefix("db-a")+"leader")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "m1" {
		t.Fatalf("after a restart: %v %v", r, err)
	}
	if err := s2.Forget(ctx, "db-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := clientv3.New(clientv3.Config{Endpoints: ga.Endpoints, Username: ga.Username, Password: pa2, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}); err == nil {
		t.Fatal("a forgotten cluster's user still logs in")
	}
	if _, _, err := s2.Grant(ctx, "bad/name"); err == nil {
		t.Fatal("a name with a slash was granted")
	}
}
