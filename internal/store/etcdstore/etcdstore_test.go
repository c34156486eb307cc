package etcdstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
	"github.com/hangar-dev/hangar/internal/store/storetest"
)

var namespaces atomic.Int64

// openOn opens a store in a fresh namespace of the etcd at endpoints.
func openOn(t *testing.T, endpoints []string, opts etcdstore.Options) *etcdstore.Store {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("/hangar/test-%d/", namespaces.Add(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := etcdstore.Open(ctx, clientv3.Config{Endpoints: endpoints}, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// One etcd serves the whole suite: every store is a fresh namespace in it,
// which starts at revision 0 like a new bbolt file. The subtests run one at
// a time, so nothing else moves etcd's revision under the suite's feet.
func TestConformance(t *testing.T) {
	eps := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openOn(t, eps, etcdstore.Options{}) })
}

// A tiny watch buffer exercises the lag path of the same suite.
func TestConformanceSmallBuffer(t *testing.T) {
	eps := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openOn(t, eps, etcdstore.Options{WatchBuffer: 4})
	})
}
