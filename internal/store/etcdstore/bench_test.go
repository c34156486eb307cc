package etcdstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/store/etcdstore"
	"github.com/hangar-dev/hangar/internal/store/etcdstore/etcdtest"
)

// The same 140-byte value as the embedded store's benchmarks, so the
// figures compare. etcdtest members run without fsync: compare with the
// embedded store's PutNoSync.
var benchValue = []byte(`{"id":"148e000c","name":"web-1","state":"started","region":"local","config":{"image":"registry.local/app:v1","guest":{"cpus":1,"memory_mb":256}}}`)

func benchPut(b *testing.B, s store.Store) {
	ctx := context.Background()
	b.SetBytes(int64(len(benchValue)))
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(ctx, fmt.Sprintf("machines/%06d", i%1000), benchValue, store.AnyRevision); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut: single-key writes to one member over loopback gRPC.
func BenchmarkPut(b *testing.B) {
	benchPut(b, openOn(b, etcdtest.Start(b), etcdstore.Options{}))
}

// BenchmarkPutCluster3: single-key writes to a 3-member cluster (each
// write is replicated to a majority before it returns).
func BenchmarkPutCluster3(b *testing.B) {
	benchPut(b, openOn(b, etcdtest.StartCluster(b, 3).Endpoints(), etcdstore.Options{}))
}

// BenchmarkCASPut: a compare-and-swap Put (expect the current revision).
func BenchmarkCASPut(b *testing.B) {
	s := openOn(b, etcdtest.Start(b), etcdstore.Options{})
	ctx := context.Background()
	rev, err := s.Put(ctx, "machines/x", benchValue, 0)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rev, err = s.Put(ctx, "machines/x", benchValue, rev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet: a linearizable single-key read among 10k keys.
func BenchmarkGet(b *testing.B) {
	s := openOn(b, etcdtest.Start(b), etcdstore.Options{})
	ctx := context.Background()
	for i := 0; i < 10000; i += 100 {
		ops := make([]store.Op, 100)
		for j := range ops {
			ops[j] = store.Op{Key: fmt.Sprintf("machines/%06d", i+j), Value: benchValue, Expect: store.AnyRevision}
		}
		if _, err := s.Txn(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		if _, err := s.Get(ctx, fmt.Sprintf("machines/%06d", i%10000)); err != nil {
			b.Fatal(err)
		}
	}
}
